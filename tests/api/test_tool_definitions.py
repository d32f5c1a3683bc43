"""`functions.api.tool_definitions`: the raw listing pins are computed from, and each way it refuses an answer.

A small aiohttp MCP stand-in in process (the behaviours cannot all be had from a real server); the
happy path against the real SDK server is in tests/api/test_tool_pins.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from functions.api.inventory import ProbeFailed
from functions.api.tool_definitions import list_tool_definitions
from localstack.config import free_port
from tests.fixtures.sidecar import serve_app

NAN = '{"jsonrpc":"2.0","id":ID,"result":{"tools":[{"name":"x","inputSchema":{"maximum":NaN}}]}}'
Answer = Callable[[dict[str, Any]], web.Response]
TOOL = {"name": "search", "description": "Search.", "inputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": True, "vendorHint": "kept"}}  # fmt: skip


def _ok(msg: dict[str, Any], result: Any, sse: bool = False) -> web.Response:
    body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result})
    if sse:
        return web.Response(text=f"event: message\ndata: {body}\n\n", content_type="text/event-stream")
    return web.Response(text=body, content_type="application/json", headers={"Mcp-Session-Id": "s1"})


def _init(msg: dict[str, Any]) -> web.Response:
    return _ok(msg, {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "x"}})


Endpoint = Callable[[Answer], Awaitable[str]]


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    """Serve `answer(tools/list message)` behind a working handshake; returns the MCP URL."""
    runners: list[web.AppRunner] = []

    async def make(answer: Answer) -> str:
        async def mcp(request: web.Request) -> web.Response:
            msg = await request.json()
            if "id" not in msg:
                return web.Response(status=202)
            if msg["method"] == "initialize":
                return _init(msg)
            if answer is _slow:
                await asyncio.sleep(5)
            return answer(msg)

        async def end(_request: web.Request) -> web.Response:
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/mcp", mcp)
        app.router.add_delete("/mcp", end)
        port = free_port()
        runners.append(await serve_app(app, port))
        return f"http://127.0.0.1:{port}/mcp"

    yield make
    for r in runners:
        await r.cleanup()


def _slow(msg: dict[str, Any]) -> web.Response:
    return _ok(msg, {"tools": []})


async def _listing(endpoint: Endpoint, answer: Answer) -> list[dict[str, Any]]:
    return await list_tool_definitions(await endpoint(answer), 1.0)


async def test_pages_are_followed_and_entries_kept_as_sent(endpoint: Endpoint) -> None:
    def answer(msg: dict[str, Any]) -> web.Response:
        if msg["params"].get("cursor") == "p2":
            return _ok(msg, {"tools": [{**TOOL, "name": "other"}]}, sse=True)
        return _ok(msg, {"tools": [TOOL, "junk", {"no": "name"}], "nextCursor": "p2"})

    tools = await _listing(endpoint, answer)
    assert [t["name"] for t in tools] == ["search", "other"]
    assert tools[0]["annotations"]["vendorHint"] == "kept"  # what the SDK's models would drop


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (lambda m: web.Response(status=500), "tools/list failed: HTTP 500"),
        (lambda m: web.Response(text="<html>", content_type="text/html"), "the answer is not JSON"),
        (lambda m: web.Response(text=NAN.replace("ID", str(m["id"])), content_type="application/json"),
         "the answer is not JSON"),
        (lambda m: web.json_response({"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32603, "message": "pw=1"}}),
         "tools/list failed: MCP error -32603"),
        (lambda m: web.json_response({"jsonrpc": "2.0", "id": 999, "result": {"tools": []}}), "no answer"),
        (lambda m: _ok(m, {"tools": "all of them"}), "not a list result"),
    ],
)
async def test_answers_that_cannot_be_pinned_are_refused_with_a_safe_reason(
    endpoint: Endpoint, answer: Answer, reason: str
) -> None:
    with pytest.raises(ProbeFailed, match=reason) as info:
        await _listing(endpoint, answer)
    assert "pw=1" not in info.value.reason


async def test_unreachable_and_timeout(endpoint: Endpoint) -> None:
    with pytest.raises(ProbeFailed, match="unreachable"):
        await list_tool_definitions(f"http://127.0.0.1:{free_port()}/mcp", 2.0)
    with pytest.raises(ProbeFailed, match="timeout: no answer within 1s"):
        await _listing(endpoint, _slow)
