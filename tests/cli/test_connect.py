"""`sentinel connect`: the printed client configs and the stdio bridge, against a real governed server.

A real API (Postgres, local Kubernetes API server), the sample MCP server and a real sidecar in
`platform` mode reading the policy the API rendered for `connect-srv`. The user is the local stack's
test user with a user API key; their grant allows everything on the server except `delete_document`.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from localstack.components import local_stack
from localstack.config import REPO_ROOT, Ports, StackConfig
from localstack.kube_seed import TOOLS
from localstack.parts.sidecars import sidecar_env
from localstack.supervisor import Supervisor
from mcp_sentinel.cli.main import main
from tests.fixtures.sidecar import SidecarProcess, mcp_client

SERVER = "connect-srv"
PARTS = {"postgres", "kube", "api", "sample_mcp"}


@dataclass
class Governed:
    cfg: StackConfig
    key: str  # the test user's API key (mcpu_…)
    url: str  # the sidecar's MCP endpoint

    @property
    def api(self) -> str:
        return self.cfg.url("api")

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(method, self.cfg.url("api", path), headers={"x-api-key": self.cfg.admin_api_key},
                          timeout=60, **kw)
        assert r.status_code < 300, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json()

    def connect_args(self, *extra: str) -> list[str]:
        return ["connect", SERVER, "-N", self.cfg.namespace, "--api-url", self.api, "--api-key", self.key,
                "--url", self.url, "--trust", "high", *extra]


def _grant(cfg: StackConfig, human: str) -> dict[str, Any]:
    return {"name": "g-connect", "namespace": cfg.namespace, "serverRef": {"name": SERVER},
            "subject": {"humanID": human}, "maxTrust": "high",
            "allowedSideEffects": ["read", "write", "destructive"],
            "toolRules": [{"name": t["name"], "decision": "deny" if t["name"] == "delete_document" else "allow"}
                          for t in TOOLS]}  # fmt: skip


@pytest.fixture(scope="module")
def governed() -> Iterator[Governed]:
    data = Path(tempfile.mkdtemp(prefix="sentinel-connect-"))
    data.chmod(0o755)  # the postgres OS user must reach it
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    try:
        with Supervisor(cfg) as sup:
            sup.start_all(local_stack(cfg, PARTS))
            login = httpx.post(cfg.url("api", "/api/auth/login"), timeout=60,
                               json={"email": "test@mcpruntime.org", "password": "test@123"})
            assert login.status_code == 200, login.text
            bearer = {"authorization": f"Bearer {login.json()['access_token']}"}
            key = httpx.post(cfg.url("api", "/api/user/api-keys"), json={"name": "connect"}, headers=bearer, timeout=60)
            assert key.status_code == 200, key.text
            g = Governed(cfg, key.json()["api_key"], cfg.url("sidecar_a", "/mcp"))
            g.admin("POST", "/api/runtime/servers", json={
                "name": SERVER, "namespace": cfg.namespace, "image": "example/workspace:1",
                "port": cfg.ports.sample_mcp, "tools": [dict(t) for t in TOOLS], "gateway": {"enabled": True},
                "session": {"required": True}})
            g.admin("POST", "/api/runtime/grants", json=_grant(cfg, login.json()["user"]["id"]))
            sidecar = SidecarProcess(sidecar_env(cfg, SERVER, "sidecar_a", "sidecar_a_metrics"),
                                     data / "sidecar.log")
            try:
                yield g
            finally:
                sidecar.stop(signal.SIGKILL)  # bridges' open GET streams would hold a graceful stop
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _connect(g: Governed, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[dict[str, Any], str]:
    capsys.readouterr()
    rc = main(g.connect_args(*extra), config=g.cfg)
    out = capsys.readouterr()
    assert rc == 0, out.err
    config: dict[str, Any] = json.loads(out.out)
    return config, out.err


def _stdio_params(entry: dict[str, Any]) -> Any:
    from mcp import StdioServerParameters

    # The worktree, not an installed copy, is the code under test: the child imports it from here.
    env = {**entry["env"], "PYTHONPATH": str(REPO_ROOT)}
    return StdioServerParameters(command=entry["command"], args=entry["args"], env=env)


def _until_live(url: str, headers: dict[str, str], limit: float = 30.0) -> None:
    """Wait until the gateway knows the printed token's session (it learns it with its next policy reload)."""
    deadline = time.monotonic() + limit
    while True:
        r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30,
                       headers={**headers, "accept": "application/json, text/event-stream"})
        if r.status_code != 401 or time.monotonic() > deadline:
            assert r.status_code != 401, r.text
            return
        time.sleep(0.2)


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


# -- the printed configs, fed to the official client ---------------------------------------------


async def test_printed_http_config_calls_the_server_with_the_official_client(
    governed: Governed, capsys: pytest.CaptureFixture[str]
) -> None:
    config, err = await asyncio.to_thread(_connect, governed, capsys)
    entry = config["mcpServers"][SERVER]
    assert entry["type"] == "http" and entry["url"] == governed.url
    assert entry["headers"]["Authorization"].startswith("Bearer ey")
    assert "expires at" in err and "--config stdio" in err
    await asyncio.to_thread(_until_live, entry["url"], entry["headers"])
    async with mcp_client(entry["url"], entry["headers"]) as client:
        ok = await client.call_tool("search", {"query": "roadmap"})
        assert not ok.is_error, ok
        with pytest.raises(MCPError, match="tool call denied: tool_denied"):
            await client.call_tool("delete_document", {"title": "roadmap"})


async def test_printed_http_config_without_the_token_is_refused(
    governed: Governed, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _err = await asyncio.to_thread(_connect, governed, capsys)
    entry = config["mcpServers"][SERVER]
    r = await asyncio.to_thread(httpx.post, entry["url"], json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                headers={"accept": "application/json, text/event-stream"}, timeout=30)
    assert r.status_code == 401 and "Bearer" in r.headers["www-authenticate"]


def test_connect_refuses_without_a_user_credential(governed: Governed, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SENTINEL_API_KEY", "SENTINEL_EMAIL", "SENTINEL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    rc = main(["connect", SERVER, "--api-url", governed.api], config=governed.cfg)
    assert rc == 2 and "user key" in capsys.readouterr().err


def test_connect_with_a_service_key_is_refused_with_the_reason(
    governed: Governed, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["connect", SERVER, "-N", governed.cfg.namespace, "--api-url", governed.api,
               "--api-key", governed.cfg.admin_api_key], config=governed.cfg)
    err = capsys.readouterr().err
    assert rc == 1 and "service keys cannot act for a human" in err, err


def test_connect_to_a_server_without_a_grant_is_refused(governed: Governed, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["connect", "server-b", "-N", governed.cfg.namespace, "--api-url", governed.api,
               "--api-key", governed.key], config=governed.cfg)
    err = capsys.readouterr().err
    assert rc == 1 and "HTTP 403" in err, err


async def test_printed_stdio_config_bridges_allowed_denied_elicitation_and_progress(
    governed: Governed, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcp import Client, types

    config, err = await asyncio.to_thread(_connect, governed, capsys, "--config", "stdio")
    entry = config["mcpServers"][SERVER]
    assert entry["type"] == "stdio" and "--stdio" in entry["args"]
    assert entry["env"] == {"SENTINEL_API_KEY": governed.key} and "Bearer" not in json.dumps(entry)
    asked: list[str] = []

    async def elicit(_ctx: Any, params: Any) -> Any:  # a server-initiated request through the bridge
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    progress: list[float] = []

    async def on_progress(done: float, _total: float | None, _message: str | None) -> None:
        progress.append(done)

    async with Client(_stdio_params(entry), mode="legacy", elicitation_callback=elicit) as client:  # type: ignore[arg-type]
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"search", "archive_document"} <= tools
        ok = await client.call_tool("search", {"query": "roadmap"})
        assert not ok.is_error, ok
        with pytest.raises(MCPError, match="tool call denied: tool_denied"):
            await client.call_tool("delete_document", {"title": "roadmap"})
        docs = await client.call_tool("list_documents", {})
        title = json.loads(_text(docs))[0] if _text(docs).startswith("[") else "roadmap"
        archived = await client.call_tool("archive_document", {"title": title})
        assert asked and f"archived {title}" in _text(archived), (asked, archived)
        summary = await client.call_tool("summarize_workspace", {"steps": 3}, progress_callback=on_progress)  # type: ignore[arg-type]
        assert not summary.is_error and progress == [1, 2, 3], (summary, progress)


# -- the bridge as a raw stdio process: message kinds, revocation, refresh, ends -----------------


class Bridge:
    """`sentinel connect --stdio` as a client would run it, driven line by line."""

    def __init__(self, g: Governed, *extra: str, url: str = "") -> None:
        args = g.connect_args(*extra)
        if url:
            args[args.index("--url") + 1] = url
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen([*_launcher(), *args, "--stdio"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._id = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        self._id += 1
        self.send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params or {}})
        return self._id

    def until(self, pred: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching message in {timeout} s; stderr: {self.stderr()}") from None
            if pred(msg):
                return msg

    def answer(self, msg_id: int, timeout: float = 60.0) -> dict[str, Any]:
        return self.until(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def handshake(self) -> None:
        init = self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
                                           "clientInfo": {"name": "raw", "version": "0"}})  # fmt: skip
        assert "result" in self.answer(init)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, name: str, args: dict[str, Any], **meta: Any) -> int:
        params: dict[str, Any] = {"name": name, "arguments": args}
        if meta:
            params["_meta"] = meta
        return self.request("tools/call", params)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)


def _record(seen: list[dict[str, Any]], msg: dict[str, Any]) -> bool:
    seen.append(msg)
    return True


def _launcher() -> list[str]:
    from mcp_sentinel.cli.connect import launcher

    return launcher()


@pytest.fixture
def bridge(governed: Governed) -> Iterator[Bridge]:
    b = Bridge(governed)
    try:
        b.handshake()
        yield b
    finally:
        if b.proc.poll() is None:
            b.proc.kill()
            b.proc.wait(timeout=30)


def test_bridge_forwards_unknown_methods_and_parse_errors(bridge: Bridge) -> None:
    unknown = bridge.answer(bridge.request("sentinel/no-such-method"))
    assert unknown["error"]["code"] == -32601, unknown  # the upstream's own "method not found"
    assert bridge.proc.stdin is not None
    bridge.proc.stdin.write(b"{not json\n")
    bridge.proc.stdin.flush()
    parse = bridge.until(lambda m: m.get("error", {}).get("code") == -32700)
    assert parse["id"] is None
    assert "result" in bridge.answer(bridge.call("search", {"query": "roadmap"}))


def test_bridge_relays_server_initiated_requests_and_the_clients_answer(bridge: Bridge) -> None:
    call = bridge.call("archive_document", {"title": "no-such-doc"})
    ask = bridge.until(lambda m: m.get("method") == "elicitation/create")
    bridge.send({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "decline"}})
    done = bridge.answer(call)
    assert "kept no-such-doc" in json.dumps(done["result"]), done


def test_bridge_relays_cancellation(bridge: Bridge) -> None:
    t0 = time.monotonic()
    call = bridge.call("summarize_workspace", {"steps": 100}, progressToken="p1")  # 100 x 50 ms
    first = bridge.until(lambda m: m.get("method") == "notifications/progress")
    assert first["params"]["progressToken"] == "p1"
    bridge.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": call}})
    seen: list[dict[str, Any]] = []
    with pytest.raises(AssertionError, match="no matching message"):  # no result for the cancelled call
        bridge.until(lambda m: _record(seen, m) and m.get("id") == call and "result" in m,
                     timeout=max(1.0, 8.0 - (time.monotonic() - t0)))
    steps = [m["params"]["progress"] for m in seen if m.get("method") == "notifications/progress"]
    assert len(steps) < 99, steps  # the server stopped working on it
    assert "result" in bridge.answer(bridge.call("search", {"query": "x"}))  # and the bridge carries on


def test_bridge_exits_cleanly_when_the_client_closes(bridge: Bridge) -> None:
    assert "result" in bridge.answer(bridge.call("search", {"query": "x"}))
    assert bridge.close() == 0


def test_bridge_refuses_after_the_session_is_revoked(governed: Governed) -> None:
    b = Bridge(governed, "--agent", "revoke-agent")
    b.handshake()
    assert "result" in b.answer(b.call("search", {"query": "x"}))
    sessions = governed.admin("GET", "/api/runtime/sessions", params={"namespace": governed.cfg.namespace})
    mine = [s for s in sessions["sessions"] if (s.get("subject") or {}).get("agentID") == "revoke-agent"]
    assert len(mine) == 1, sessions
    governed.admin("PATCH", f"/api/runtime/sessions/{governed.cfg.namespace}/{mine[0]['name']}",
                   json={"revoked": True})
    deadline = time.monotonic() + 30
    while True:
        answer = b.answer(b.call("search", {"query": "x"}))
        if "error" in answer:
            break
        assert time.monotonic() < deadline, "the revoked session still works"
        time.sleep(0.2)
    assert answer["error"]["data"]["reason"] == "session_revoked", answer
    assert b.close() == 0


def test_bridge_refreshes_the_token_before_it_expires(governed: Governed) -> None:
    # A 20 s session bounds the token to 20 s; the bridge refreshes it ~4 s before, which renews the
    # session, so calls keep working past the first token's (and session's) expiry.
    b = Bridge(governed, "--agent", "refresh-agent", "--session-ttl", "20s")
    try:
        b.handshake()
        t0 = time.monotonic()
        assert "result" in b.answer(b.call("search", {"query": "x"}))
        while time.monotonic() - t0 < 26:
            time.sleep(1.0)
        late = b.answer(b.call("search", {"query": "x"}))
        assert "result" in late, late
        assert b.close() == 0
        assert "token refresh failed" not in b.stderr()
    finally:
        if b.proc.poll() is None:
            b.proc.kill()


def test_bridge_exits_when_the_server_goes_away(governed: Governed, tmp_path: Path) -> None:
    cfg = governed.cfg
    env = sidecar_env(cfg, SERVER, "sidecar_b", "sidecar_b_metrics")
    env["AUDIT_SPOOL_DIR"] = str(tmp_path / "spool")
    sc = SidecarProcess(env, tmp_path / "sidecar.log")
    b = Bridge(governed, url=cfg.url("sidecar_b", "/mcp"))
    try:
        b.handshake()
        assert "result" in b.answer(b.call("search", {"query": "x"}))
        sc.stop(signal.SIGKILL)
        failed = b.answer(b.call("search", {"query": "x"}))
        assert "cannot reach" in failed["error"]["message"], failed
        assert b.proc.wait(timeout=30) == 1
        assert "unreachable" in b.stderr()
    finally:
        sc.stop(signal.SIGKILL)
        if b.proc.poll() is None:
            b.proc.kill()


async def test_bridge_refreshes_on_a_401_with_www_authenticate(governed: Governed) -> None:
    """A token the gateway refuses (here: not a token at all) is replaced once and the call retried."""
    from mcp_sentinel.cli.agent_identity import AgentIdentity, Credential, Token
    from mcp_sentinel.cli.stdio_bridge import StdioBridge

    class Out:
        def __init__(self) -> None:
            self.lines: list[dict[str, Any]] = []

        def write(self, data: bytes) -> int:
            self.lines.append(json.loads(data))
            return len(data)

        def flush(self) -> None:
            pass

    ident = AgentIdentity(governed.api, Credential(api_key=governed.key), SERVER, governed.cfg.namespace, "401-agent")
    ident.token = Token("not-a-token", time.time() + 600, "", governed.url, "s", governed.cfg.namespace)
    ident._refresh_at = time.time() + 600  # not due: only the gateway's 401 can trigger the refresh
    out = Out()
    async with httpx.AsyncClient(timeout=30) as http:
        bridge = StdioBridge(governed.url, ident, http, out, lambda _m: None)  # type: ignore[arg-type]
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "0"}}}  # fmt: skip
        await bridge.send(init, json.dumps(init).encode())
        assert "result" in out.lines[-1], out.lines
        assert ident.token.access_token != "not-a-token"
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "search", "arguments": {"query": "x"}}}  # fmt: skip
        await asyncio.wait_for(bridge.send(call, json.dumps(call).encode()), 60)
        assert out.lines[-1]["id"] == 2 and "result" in out.lines[-1], out.lines


def test_connect_signs_in_with_email_and_password(governed: Governed, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_API_KEY", raising=False)
    monkeypatch.setenv("SENTINEL_EMAIL", "test@mcpruntime.org")
    monkeypatch.setenv("SENTINEL_PASSWORD", "test@123")
    base = ["connect", SERVER, "-N", governed.cfg.namespace, "--api-url", governed.api, "--url", governed.url]
    assert main([*base, "--json", "--name", "workspace"], config=governed.cfg) == 0
    out = json.loads(capsys.readouterr().out)
    entry = out["config"]["mcpServers"]["workspace"]
    assert entry["headers"]["Authorization"].startswith("Bearer ") and out["expires_at"].endswith("Z")
    assert out["session"]["namespace"] == governed.cfg.namespace and out["url"] == governed.url
    monkeypatch.setenv("SENTINEL_PASSWORD", "not-the-password")
    assert main(base, config=governed.cfg) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_bridge_exits_when_the_server_ends_the_session(governed: Governed, tmp_path: Path) -> None:
    """An upstream restart forgets the MCP session: the next call is a 404, the bridge answers and exits 1."""
    import sys

    cfg = governed.cfg
    ports = Ports.free()
    upstream_cmd = [sys.executable, "-m", "examples.workspace_assistant", "--host", cfg.host,
                    "--port", str(ports.sample_mcp)]

    def start_upstream() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(upstream_cmd, cwd=str(REPO_ROOT), env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://{cfg.host}:{ports.sample_mcp}/", timeout=1)
                return proc
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("upstream did not start")

    upstream = start_upstream()
    env = sidecar_env(cfg, SERVER, "sidecar_b", "sidecar_b_metrics")
    env.update(UPSTREAM_URL=f"http://{cfg.host}:{ports.sample_mcp}", AUDIT_SPOOL_DIR=str(tmp_path / "spool"))
    sc = SidecarProcess(env, tmp_path / "sidecar.log")
    b = Bridge(governed, url=cfg.url("sidecar_b", "/mcp"))
    try:
        b.handshake()
        assert "result" in b.answer(b.call("search", {"query": "x"}))
        upstream.kill()
        upstream.wait(timeout=30)
        upstream = start_upstream()  # a fresh process: the bridge's MCP session id means nothing to it
        ended = b.answer(b.call("search", {"query": "x"}))
        assert "error" in ended, ended
        assert b.proc.wait(timeout=30) == 1
        assert "ended MCP session" in b.stderr()
    finally:
        sc.stop(signal.SIGKILL)
        upstream.kill()
        if b.proc.poll() is None:
            b.proc.kill()


async def test_stdio_bridge_carries_the_2026_protocol_era(
    governed: Governed, capsys: pytest.CaptureFixture[str]
) -> None:
    """No handshake: each message names its version in `_meta`; the bridge mirrors it (and the routing headers)."""
    from mcp import Client

    config, _err = await asyncio.to_thread(_connect, governed, capsys, "--config", "stdio")
    entry = config["mcpServers"][SERVER]
    async with Client(_stdio_params(entry), mode="2026-07-28") as client:
        assert "search" in {t.name for t in (await client.list_tools()).tools}
        ok = await client.call_tool("search", {"query": "roadmap"})
        assert not ok.is_error, ok
        with pytest.raises(MCPError, match="tool call denied: tool_denied"):
            await client.call_tool("delete_document", {"title": "roadmap"})
