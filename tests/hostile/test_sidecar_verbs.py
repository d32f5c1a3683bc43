"""JSON-RPC carried by PUT/PATCH must be governed like POST (upstream §11.15 proxied them ungoverned).

The sample MCP server refuses PUT itself, which would hide the bypass; this test puts a permissive
upstream behind a real sidecar process that executes JSON-RPC from any verb and records what it saw.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
from aiohttp import web

from localstack.config import REPO_ROOT, Ports
from tests.fixtures.sidecar import BOB, SidecarProcess
from tests.helpers.wire import BASE, tool_call

POLICY = REPO_ROOT / "examples" / "policies" / "server-a.json"


async def test_put_and_patch_tool_calls_are_governed(tmp_path: Path) -> None:
    ports = Ports.free()
    seen: list[tuple[str, Any]] = []

    async def anything(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        seen.append((request.method, body))
        msg_id = body.get("id") if isinstance(body, dict) else None
        return web.json_response({"jsonrpc": "2.0", "id": msg_id, "result": {"executed": True}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", ports.sample_mcp).start()
    policy = tmp_path / "p.json"
    policy.write_bytes(POLICY.read_bytes())
    sc = await asyncio.to_thread(
        SidecarProcess,
        {
            "PORT": str(ports.sidecar_a),
            "METRICS_PORT": str(ports.sidecar_a_metrics),
            "LISTEN_HOST": "127.0.0.1",
            "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
            "POLICY_FILE": str(policy),
        },
        tmp_path / "sc.log",
    )
    url = f"http://127.0.0.1:{ports.sidecar_a}/mcp"
    try:
        async with httpx2.AsyncClient(timeout=30) as c:
            for verb in ("PUT", "PATCH"):
                for who in ({}, BOB):
                    body = json.dumps(tool_call("delete_document", {"title": "welcome"}, id_=verb))
                    r = await c.request(verb, url, content=body, headers={**BASE, **who})
                    assert r.status_code in (401, 403, 405), (verb, r.status_code, r.text)
                    assert r.json()["error"]["data"]["reason"]
            # An allowed call by PUT is still evaluated (and may pass): governance, not a blanket block.
            r = await c.put(url, content=json.dumps(tool_call("search", {"query": "a"}, id_=9)), headers=BASE)
            assert r.status_code in (200, 405), r.text
    finally:
        await asyncio.to_thread(sc.stop)
        await runner.cleanup()
    executed = [(m, b["params"]["name"]) for m, b in seen if isinstance(b, dict) and b.get("method") == "tools/call"]
    assert ("PUT", "delete_document") not in executed and ("PATCH", "delete_document") not in executed, executed
