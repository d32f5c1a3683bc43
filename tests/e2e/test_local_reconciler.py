"""The local stack reconciles MCPServers: real processes (kube API server, Postgres, the API, the sample MCP
server, the front door and the reconciler), the official `mcp` client, platform tokens.

A server registered by URL through the API is callable at `<front door>/<name>/mcp` within 5 s (its
own sidecar process, route, policy, audit identity); its status carries the shared condition shape;
deleting it makes the route 404 and leaves no sidecar process; an image server is `Ready=False`
(`NoContainerRuntime`) and gets no route.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mcp.client.streamable_http  # noqa: F401 - imported up front: the timed window is the stack's, not this import's
import pytest

from localstack.cli import main as cli
from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.demo_remote import NAME as NAME_OF_DEMO
from localstack.demo_remote import run_remote_demo
from localstack.supervisor import Supervisor
from mcp_sentinel.kube.client import load_kube
from mcp_sentinel.kube.errors import NotFound
from mcp_sentinel.kube.resources import SentinelKube
from tests.fixtures.sidecar import mcp_client

# temporal: the API starts a session-expiry workflow when it opens a session (unreachable = a slow failure).
PARTS = {"postgres", "kube", "temporal", "sample_mcp", "api", "reconciler", "front_door"}
NS = "mcp-servers"
AGENT = "remote-agent"
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[StackConfig, Supervisor]]:
    # Not pytest's tmp_path: its 0700 root-owned parents are unreachable for the postgres user.
    data = Path(tempfile.mkdtemp(prefix="sentinel-localrec-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    try:
        with Supervisor(cfg) as sup:
            sup.start_all(local_stack(cfg, only=PARTS))
            yield cfg, sup
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def stack(running: tuple[StackConfig, Supervisor]) -> StackConfig:
    return running[0]


def sidecar_pids(server: str) -> list[int]:
    """PIDs of `python -m sidecar` processes configured for `server` (read from /proc, like ps would)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"sidecar" in argv and f"MCP_SERVER_NAME={server}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def environ_names(pid: int) -> set[str]:
    """Names of the variables in a process's environment."""
    return {e.partition(b"=")[0].decode() for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if e}


def _kube(cfg: StackConfig) -> SentinelKube:
    return SentinelKube(load_kube({"KUBECONFIG": str(cfg.kubeconfig)}))


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


async def _status(kube: SentinelKube, name: str, reason: str, deadline: float) -> dict[str, Any]:
    """The server once its Ready condition has `reason` (or fail at the deadline with what it has)."""
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = await asyncio.to_thread(kube.servers.get, NS, name)
        if _conditions(obj).get("Ready", {}).get("reason") == reason:
            return obj
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name}: Ready never became {reason}: {obj.get('status')}")


async def _until_no_sidecar(server: str, deadline: float) -> bool:
    """True once no sidecar process for `server` exists (False at the deadline)."""
    while time.monotonic() < deadline:
        if not sidecar_pids(server):
            return True
        await asyncio.sleep(0.05)
    return not sidecar_pids(server)


@pytest.mark.timeout(300)
async def test_a_server_registered_by_url_is_governed_at_the_front_door_within_5s(stack: StackConfig) -> None:
    cfg = stack
    admin = {"x-api-key": cfg.admin_api_key}
    name = f"remote-{uuid.uuid4().hex[:6]}"
    front = cfg.url("front_door", f"/{name}/mcp")
    async with httpx.AsyncClient(base_url=cfg.url("api"), timeout=30) as api:
        login = await api.post("/api/auth/login", json={"email": "test@mcpruntime.org", "password": "test@123"})
        assert login.status_code == 200, login.text
        user = {"Authorization": f"Bearer {login.json()['access_token']}"}
        human = login.json()["user"]["id"]

        # The API loads its routes and token keys on first use: warm them so the clock measures the reconcile.
        for path in ("/api/runtime/servers", "/api/runtime/grants", "/api/runtime/sessions"):
            assert (await api.get(path, headers=admin)).status_code == 200
        assert (await api.get("/api/.well-known/jwks.json")).status_code == 200

        t0 = time.monotonic()
        r = await api.post("/api/runtime/servers", headers=admin, json={
            "name": name, "scope": "public", "gateway": {"upstreamURL": cfg.url("sample_mcp")},
            "tools": [{"name": "search", "sideEffect": "read"}, {"name": "delete_document", "sideEffect": "destructive",
                                                                 "requiredTrust": "high"}],
            "session": {"required": True}})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["server"]["gateway"] == {"enabled": True}  # a remote server is its gateway
        r = await api.post("/api/runtime/grants", headers=admin, json={
            "name": f"{name}-grant", "namespace": NS, "serverRef": {"name": name},
            "subject": {"humanID": human, "agentID": AGENT}, "maxTrust": "low", "allowedSideEffects": ["read"],
            "toolRules": [{"name": "search", "decision": "allow"}]})  # fmt: skip
        assert r.status_code == 200, r.text
        r = await api.post("/api/runtime/adapter/sessions", headers=user,
                           json={"serverName": name, "namespace": NS, "agentID": AGENT})
        assert r.status_code == 200, r.text
        r = await api.post("/api/agent-tokens", headers=user, json={"namespace": NS, "session": r.json()["name"]})
        assert r.status_code == 200, r.text
        assert r.json()["resource"] == front  # the token's audience is the front-door URL
        bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
        prepared = time.monotonic() - t0

        # Poll until the call goes through; 5 s after registration is the bound asserted.
        result, last, elapsed = None, None, 0.0
        while result is None and time.monotonic() - t0 < 60:
            try:
                async with mcp_client(front, bearer) as client:
                    result = await client.call_tool("search", {"query": "roadmap"})
                    elapsed = time.monotonic() - t0
                    tools = {t.name for t in (await client.list_tools()).tools}
            except Exception as exc:  # not routed yet (404), sidecar starting, policy not yet loaded
                last = exc
                await asyncio.sleep(0.05)
        assert result is not None, f"never callable: {last!r}"
        assert not result.is_error, result
        assert tools == {"search"}, tools  # governed: the destructive tool is not even listed
        print(f"registration -> governed call through the front door: {elapsed:.2f} s "
              f"(grant, session and token done after {prepared:.2f} s)")
        assert elapsed <= 5.0, f"took {elapsed:.2f} s"

        async with httpx.AsyncClient(timeout=10) as h:
            anon = await h.post(front, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                headers={"Accept": "application/json, text/event-stream"})
        assert anon.status_code == 401, anon.text  # platform mode: no token, no entry

        kube = _kube(cfg)
        obj = await _status(kube, name, "Serving", time.monotonic() + 10)
        status = obj["status"]
        assert status["url"] == front
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert status["policyRevision"]
        conds = _conditions(obj)
        assert {t: c["status"] for t, c in conds.items()} == {"Ready": "True", "GatewayReady": "True",
                                                               "PolicyDelivered": "True"}
        assert all(c["lastTransitionTime"].endswith("Z") and c["reason"] for c in conds.values())
        pids = sidecar_pids(name)
        assert len(pids) == 1, pids  # its own process
        names = environ_names(pids[0])
        # Its own ingest credential, never the secret that mints them nor the reconciler's kubeconfig.
        assert "ANALYTICS_API_KEY" in names and not names & {"GATEWAY_CREDENTIAL_SECRET", "KUBECONFIG"}, names
        # Its own audit trail: ingest is not part of this stack, so the decisions wait in its own spool.
        spooled = [json.loads(line) for seg in sorted(cfg.path("spool", NS, name).glob("*.jsonl"))
                   for line in seg.read_text().splitlines() if line]  # fmt: skip
        calls = [e for e in spooled if e["data"].get("tool_name") == "search"]
        assert calls and calls[0]["source"] == f"{name}-gateway", spooled[:2]
        assert {(e["data"].get("server"), e["data"].get("decision"), e["data"].get("human_id")) for e in calls} == {
            (name, "allow", human)}, calls

        r = await api.delete(f"/api/runtime/servers/{NS}/{name}", headers=admin)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 15
        async with httpx.AsyncClient(timeout=10) as h:
            while True:
                gone = await h.post(front, json={}, headers=bearer)
                if gone.status_code == 404 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        assert gone.status_code == 404 and gone.json()["error"] == "unknown_server", gone.text
        assert await _until_no_sidecar(name, deadline), sidecar_pids(name)


@pytest.mark.timeout(120)
async def test_an_image_server_is_reported_not_ready_and_gets_no_route(stack: StackConfig) -> None:
    cfg = stack
    name = f"image-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=cfg.url("api"), timeout=30) as api:
        r = await api.post("/api/runtime/servers", headers={"x-api-key": cfg.admin_api_key}, json={
            "name": name, "scope": "public", "image": "example/mcp:1", "port": 8088,
            "gateway": {"enabled": True, "port": 8091}})  # fmt: skip
        assert r.status_code == 200, r.text
    kube = _kube(cfg)
    obj = await _status(kube, name, "NoContainerRuntime", time.monotonic() + 15)
    conds = _conditions(obj)
    assert conds["Ready"]["status"] == "False" and "container runtime" in conds["Ready"]["message"]
    assert conds["GatewayReady"]["status"] == "False"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    async with httpx.AsyncClient(timeout=10) as h:
        r = await h.post(cfg.url("front_door", f"/{name}/mcp"), json={})
    assert r.status_code == 404, r.text
    assert sidecar_pids(name) == []
    await asyncio.to_thread(kube.servers.delete, NS, name)
    with pytest.raises(NotFound):
        await asyncio.to_thread(kube.servers.get, NS, name)



@pytest.mark.timeout(180)
async def test_stopping_the_reconciler_stops_its_sidecars_and_a_restart_restores_them(
    running: tuple[StackConfig, Supervisor],
) -> None:
    cfg, sup = running
    name = f"restart-{uuid.uuid4().hex[:6]}"
    front = cfg.url("front_door", f"/{name}/mcp")
    kube = _kube(cfg)
    async with httpx.AsyncClient(base_url=cfg.url("api"), timeout=30) as api:
        r = await api.post("/api/runtime/servers", headers={"x-api-key": cfg.admin_api_key}, json={
            "name": name, "scope": "public", "gateway": {"upstreamURL": cfg.url("sample_mcp")}})  # fmt: skip
        assert r.status_code == 200, r.text
    await _status(kube, name, "Serving", time.monotonic() + 20)
    before = sidecar_pids(name)
    assert len(before) == 1, before

    component = sup.running["reconciler"].component
    await asyncio.to_thread(sup.stop, "reconciler")
    assert sidecar_pids(name) == []  # the supervisor's stop returns once the whole group is gone
    routes = cfg.path("front_door", "routes.json")
    assert json.loads(routes.read_text()) == {"routes": {}}
    async with httpx.AsyncClient(timeout=10) as h:
        assert (await _post_until(h, front, lambda code: code == 404)) == 404

        await asyncio.to_thread(sup.start, component)
        # Routed again to a new sidecar: without a token the platform-mode gateway answers 401 itself.
        assert (await _post_until(h, front, lambda code: code == 401)) == 401
    after = sidecar_pids(name)
    assert len(after) == 1 and after != before, (before, after)
    await asyncio.to_thread(kube.servers.delete, NS, name)
    assert await _until_no_sidecar(name, time.monotonic() + 15), sidecar_pids(name)


async def _post_until(h: httpx.AsyncClient, url: str, done: Callable[[int], bool], seconds: float = 15) -> int:
    """POST an empty body until `done(status)` or the deadline; the last status."""
    deadline = time.monotonic() + seconds
    while True:
        code = (await h.post(url, json=LIST, headers={"Accept": "application/json, text/event-stream"})).status_code
        if done(code) or time.monotonic() > deadline:
            return code
        await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
def test_the_demo_registers_a_server_at_run_time_and_calls_it(stack: StackConfig) -> None:
    lines: list[str] = []
    run_remote_demo(stack, lines.append)
    text = "\n".join(lines)
    assert f"{NAME_OF_DEMO}.search via {stack.url('front_door', f'/{NAME_OF_DEMO}/mcp')}: allowed" in text, text
    assert "visible tools: search)" in text, text  # delete_document is declared but not granted: not listed
    assert "Ready=True (Serving)" in text, text
    # Re-running the demo (the data folder persists across `./dev up`) updates instead of failing.
    again: list[str] = []
    run_remote_demo(stack, again.append)
    assert ": allowed" in "\n".join(again), again


@pytest.mark.timeout(120)
async def test_the_cli_registers_lists_and_deletes_a_server_by_url(
    stack: StackConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = stack
    name = f"cli-{uuid.uuid4().hex[:6]}"
    front = cfg.url("front_door", f"/{name}/mcp")
    doc = tmp_path / "server.yaml"
    doc.write_text(f"apiVersion: mcpruntime.org/v1alpha1\nkind: MCPServer\n"
                   f"metadata: {{name: {name}, namespace: {NS}}}\n"
                   f"spec:\n  gateway: {{upstreamURL: '{cfg.url('sample_mcp')}'}}\n")
    assert await asyncio.to_thread(cli, ["server", "apply", "-f", str(doc)], config=cfg) == 0
    assert await asyncio.to_thread(cli, ["server", "apply", "-f", str(doc)], config=cfg) == 0  # again: an update
    async with httpx.AsyncClient(timeout=10) as h:
        assert (await _post_until(h, front, lambda code: code == 401)) == 401  # routed: its gateway wants a token
        await _status(_kube(cfg), name, "Serving", time.monotonic() + 10)
        capsys.readouterr()
        assert await asyncio.to_thread(cli, ["server", "list", "-N", NS, "--json"], config=cfg) == 0
        listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
        assert listed[name]["status"]["url"] == front
        assert await asyncio.to_thread(cli, ["server", "list", "-N", NS], config=cfg) == 0
        row = next(line for line in capsys.readouterr().out.splitlines() if line.split()[1:2] == [name])
        assert "True (Serving)" in row and front in row
        assert await asyncio.to_thread(cli, ["server", "delete", name, "-N", NS], config=cfg) == 0
        assert capsys.readouterr().out.strip() == f"deleted server {NS}/{name}"
        assert (await _post_until(h, front, lambda code: code == 404)) == 404
    assert await _until_no_sidecar(name, time.monotonic() + 15)
    assert cli(["server", "delete", "../etc", "-N", NS], config=cfg) == 2
    assert "must be a Kubernetes name" in capsys.readouterr().err
