"""A permissive upstream and a real sidecar process in front of it (issue 13: "no way around the gateway").

The upstream is the honest test double for the gateway: it executes any JSON-RPC that reaches it,
whatever the HTTP verb (a body on GET, DELETE or OPTIONS included), decodes any request coding
aiohttp knows, compresses answers with whatever the client accepts (or, when told to misbehave,
with a coding nobody asked for), answers as JSON or SSE, and replays list results on GET streams.
It records every JSON-RPC message it executed, so a test can prove what got past the gateway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brotli
from aiohttp import web

from localstack.config import Ports
from mcp_sentinel.policy import (
    AuthBlock,
    CompiledPolicy,
    Grant,
    PolicyBlock,
    PolicyDocument,
    Prompt,
    Resource,
    ServerInfo,
    SessionBlock,
    Tool,
    compute_revision,
    to_pretty_json,
)
from tests.fixtures.sidecar import SidecarProcess

try:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - before Python 3.14
    from backports import zstd  # type: ignore[no-redef,unused-ignore]

ALICE_ID = {"X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "agent"}
BOB_ID = {"X-MCP-Human-ID": "bob", "X-MCP-Agent-ID": "agent"}
JSON_HDRS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

TOOLS = [{"name": n, "inputSchema": {"type": "object"}} for n in ("search", "delete_document", "undeclared")]
PROMPTS = [{"name": "summary"}, {"name": "secret"}, {"name": "undeclared"}]
RESOURCES = [{"uri": "file:///readme.md", "name": "readme"}, {"uri": "vault://k1", "name": "vault"},
             {"uri": "file:///etc/passwd", "name": "passwd"}]
TEMPLATES = [{"uriTemplate": "vault://{key}", "name": "vault"}, {"uriTemplate": "file:///{path}", "name": "any"}]
LISTS = {"tools/list": {"tools": TOOLS}, "prompts/list": {"prompts": PROMPTS},
         "resources/list": {"resources": RESOURCES}, "resources/templates/list": {"resourceTemplates": TEMPLATES}}
# What Alice (read, low trust) may see; Bob and anonymous callers see nothing.
ALICE_SEES = {"tools": ["search"], "prompts": ["summary"], "resources": ["file:///readme.md"], "resourceTemplates": []}


def policy_document() -> PolicyDocument:
    """Header mode, allow-list: Alice may read at low trust; Bob has no grant."""
    doc = PolicyDocument(
        schema_version="v1",
        server=ServerInfo(name="permissive", namespace="ns"),
        auth=AuthBlock(mode="header"),
        policy=PolicyBlock(mode="allow-list", default_decision="deny", policy_version="v1"),
        session=SessionBlock(required=False),
        tools=(Tool(name="search", required_trust="low", side_effect="read"),
               Tool(name="delete_document", required_trust="high", side_effect="destructive")),
        grants=(
            Grant(name="alice", namespace="ns", human_id="alice", max_trust="low", allowed_side_effects=("read",)),
        ),
        prompts=(Prompt(name="summary", side_effect="read"), Prompt(name="secret", required_trust="high",
                                                                     side_effect="read")),
        resources=(Resource(name="readme", uri="file:///readme.md", side_effect="read"),
                   Resource(name="vault", uri="vault://{key}", required_trust="high", side_effect="read")),
    )
    return dataclasses.replace(doc, revision=compute_revision(doc))


def compiled_policy() -> CompiledPolicy:
    """The policy the sidecar runs, for computing what it must decide."""
    return CompiledPolicy(policy_document())


def compress(data: bytes, coding: str) -> bytes:
    """`data` in `coding` (gzip, deflate, br, zstd)."""
    if coding in ("gzip", "x-gzip"):
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "br":
        return bytes(brotli.compress(data))
    if coding == "zstd":
        return bytes(zstd.compress(data))
    raise ValueError(coding)


def _pick(accept: str) -> str:
    for part in accept.split(","):
        c = part.split(";")[0].strip().lower()
        if c in ("gzip", "deflate", "br", "zstd"):
            return c
    return ""


@dataclass
class Upstream:
    """The permissive upstream's record of what it executed: (HTTP verb, JSON-RPC message)."""

    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def anything(request: web.Request) -> web.StreamResponse:
            self.requests.append((request.method, {k.lower(): v for k, v in request.headers.items()}))
            raw = await request.read()  # aiohttp has already undone any Content-Encoding it knows
            try:
                doc = json.loads(raw) if raw.strip() else None
            except ValueError:
                doc = None
            msgs = doc if isinstance(doc, list) else [doc] if isinstance(doc, dict) else []
            answers = []
            for m in msgs:
                if isinstance(m, dict) and isinstance(m.get("method"), str):
                    self.seen.append((request.method, m))
                    if "id" in m:
                        result = LISTS.get(m["method"], {"executed": m["method"], "content": []})
                        answers.append({"jsonrpc": "2.0", "id": m["id"], "result": result})
            if request.method == "GET" and not msgs:
                # A (resumed) stream: replays answers to earlier list requests plus a server notification.
                answers = [{"jsonrpc": "2.0", "id": 90 + i, "result": r} for i, r in enumerate(LISTS.values())]
                answers.append({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "hi"}})
                return self._answer(request, answers, sse=True)
            if not answers:
                return web.Response(status=202)
            out: Any = answers if isinstance(doc, list) else answers[0]
            return self._answer(request, [out], sse=request.headers.get("X-Answer") == "sse")

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", anything)
        return app

    @staticmethod
    def _answer(request: web.Request, docs: list[Any], *, sse: bool) -> web.Response:
        if sse:
            body = b"".join(b"id: ev-%d\nevent: message\ndata: " % i + json.dumps(d).encode() + b"\n\n"
                            for i, d in enumerate(docs))
            ctype = "text/event-stream"
        else:
            body, ctype = json.dumps(docs[0]).encode(), "application/json"
        headers: dict[str, str] = {}
        forced = request.headers.get("X-Force-Encoding", "")
        coding = forced or _pick(request.headers.get("Accept-Encoding", ""))
        if coding == "x-bogus":
            body = b"\x00garbage" + body
        elif coding:
            body = compress(body, coding)
        if coding:
            headers["Content-Encoding"] = coding
        return web.Response(body=body, headers=headers, content_type=ctype)


class _LoopThread:
    """An asyncio loop in a daemon thread serving the upstream app."""

    def __init__(self, app: web.Application, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._runner.setup())
            self.loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", port).start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        if not ready.wait(30):
            raise RuntimeError("permissive upstream did not start")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Rig:
    """A sidecar process in front of the permissive upstream, with its audit spool."""

    url: str
    port: int
    upstream: Upstream
    spool: Path

    def audit(self) -> list[dict[str, Any]]:
        """Every audit payload spooled so far, in order."""
        lines = [ln for seg in sorted(self.spool.glob("seg-*.jsonl")) for ln in seg.read_bytes().splitlines()]
        return [json.loads(ln)["data"] for ln in lines if ln.strip()]


def start_rig(tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[Rig]:
    """Generator for a module fixture: yields a running `Rig`, stops everything afterwards."""
    ports = Ports.free()
    upstream = Upstream()
    served = _LoopThread(upstream.app(), ports.sample_mcp)
    policy = tmp / "policy.json"
    policy.write_text(to_pretty_json(policy_document()))
    spool = tmp / "spool"
    env = {
        "PORT": str(ports.sidecar_a),
        "METRICS_PORT": str(ports.sidecar_a_metrics),
        "LISTEN_HOST": "127.0.0.1",
        "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
        "POLICY_FILE": str(policy),
        "AUDIT_SPOOL_DIR": str(spool),
        **(extra_env or {}),
    }
    try:
        sc = SidecarProcess(env, tmp / "sidecar.log")
    except Exception:
        served.stop()
        raise
    try:
        yield Rig(f"http://127.0.0.1:{ports.sidecar_a}/mcp", ports.sidecar_a, upstream, spool)
    finally:
        sc.stop()
        served.stop()
