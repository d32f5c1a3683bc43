"""The gateway's own listing of the upstream (sidecar/pins.py `PinGuard.refresh`): every answer it
cannot use leaves what it knew in place and reports failure; a good one replaces it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from localstack.config import free_port
from mcp_sentinel.policy.tool_digest import tool_digest
from sidecar.pins import PinGuard
from sidecar.settings import SidecarSettings
from tests.fixtures.sidecar import serve_app

TOOL = {"name": "search", "description": "Search.", "inputSchema": {"type": "object"}}
Answer = Callable[[dict[str, Any]], web.Response]


def _ok(msg: dict[str, Any], result: Any) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "id": msg["id"], "result": result})


@pytest.fixture
async def guard() -> AsyncIterator[Callable[[Answer], Any]]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(answer: Answer) -> PinGuard:
        async def mcp(request: web.Request) -> web.Response:
            msg = await request.json()
            if "id" not in msg:
                return web.Response(status=202)
            if msg["method"] == "initialize":
                return _ok(msg, {"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "x"}})
            return answer(msg)

        app = web.Application()
        app.router.add_post("/mcp", mcp)
        port = free_port()
        runners.append(await serve_app(app, port))
        g = PinGuard(SidecarSettings(upstream_url=f"http://127.0.0.1:{port}"))
        g.session = aiohttp.ClientSession()
        sessions.append(g.session)
        return g

    yield make
    for s in sessions:
        await s.close()
    for r in runners:
        await r.cleanup()


async def test_a_good_listing_replaces_what_was_known(guard: Any) -> None:
    g = await guard(lambda m: _ok(m, {"tools": [TOOL, {"name": "bad", "inputSchema": {"x": float("inf")}}]}))
    g.live = {"gone": "sha256:" + "0" * 64}
    assert await g.refresh()
    assert g.live == {"search": tool_digest(TOOL), "bad": None}  # an entry that cannot be hashed matches no pin


@pytest.mark.parametrize(
    "answer",
    [
        lambda m: web.Response(status=500),
        lambda m: web.Response(text="not json", content_type="application/json"),
        lambda m: web.json_response({"jsonrpc": "2.0", "id": m["id"], "error": {"code": -1}}),
        lambda m: web.json_response({"jsonrpc": "2.0", "id": m["id"], "error": "odd"}),
        lambda m: web.json_response({"jsonrpc": "2.0", "id": 999, "result": {"tools": []}}),
        lambda m: _ok(m, {"tools": {"search": TOOL}}),
        lambda m: web.Response(text="event: message\ndata: " + json.dumps([1]) + "\n\n",
                               content_type="text/event-stream"),
    ],
)
async def test_an_unusable_answer_keeps_what_was_known(guard: Any, answer: Answer) -> None:
    g = await guard(answer)
    known = {"search": tool_digest(TOOL)}
    g.live = dict(known)
    assert not await g.refresh()
    assert g.live == known


async def test_no_upstream_client_yet_or_unreachable() -> None:
    g = PinGuard(SidecarSettings(upstream_url=f"http://127.0.0.1:{free_port()}"))
    assert not await g.refresh()  # before start-up: no client
    async with aiohttp.ClientSession() as s:
        g.session = s
        assert not await g.refresh()
