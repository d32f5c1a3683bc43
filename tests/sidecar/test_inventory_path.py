"""The sidecar's live-inventory path (`/.sentinel/inventory/<mcp path>`): token-gated, list-only,
unfiltered, unaudited; and the upstream probe identity gets no audit exemption on the normal path."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx2
from aiohttp import web

from mcp_sentinel.stack.config import Ports
from tests.fixtures.sidecar import ALICE, BOB, SidecarProcess, SidecarStack, mcp_client, serve_app

TOKEN_HEADER = "X-Sentinel-Inventory-Token"
POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "server-a.json"
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _spooled(stack: SidecarStack, server: str) -> float:
    text = httpx2.get(stack.metrics_url(server), timeout=10).text
    found = re.search(r"^mcp_gateway_audit_events_spooled_total (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_the_inventory_lists_what_the_server_serves_unfiltered_and_unaudited(sidecar_stack: SidecarStack) -> None:
    token = {TOKEN_HEADER: sidecar_stack.cfg.inventory_token}
    before = _spooled(sidecar_stack, "server-b")
    async with mcp_client(sidecar_stack.url("server-b", "/.sentinel/inventory/mcp"), token, mode="legacy") as c:
        everything = {t.name for t in (await c.list_tools()).tools}
    await asyncio.sleep(0.3)
    assert _spooled(sidecar_stack, "server-b") == before  # listing for the catalog decides nothing: no audit
    # The same server through its governed path, as bob (grant on server-b for a few tools): filtered.
    async with mcp_client(sidecar_stack.url("server-b"), BOB, mode="legacy") as c:
        bobs = {t.name for t in (await c.list_tools()).tools}
    assert {"list_documents", "delete_document", "archive_document"} <= everything
    assert bobs < everything
    assert _spooled(sidecar_stack, "server-b") > before  # the governed listing is audited


def test_token_and_method_gates(sidecar_stack: SidecarStack) -> None:
    url = sidecar_stack.url("server-a", "/.sentinel/inventory/mcp")
    good = {TOKEN_HEADER: sidecar_stack.cfg.inventory_token}
    for headers in ({}, {TOKEN_HEADER: "wrong"}, {TOKEN_HEADER: ""}):
        r = httpx2.post(url, content=json.dumps(LIST), headers={**JSON, **headers}, timeout=10)
        assert r.status_code == 401 and r.json() == {"error": "inventory_unauthorized"}, headers
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete_document", "arguments": {}}}
    for body in (call, [LIST, call]):  # alone or hidden in a batch, a call never passes
        r = httpx2.post(url, content=json.dumps(body), headers={**JSON, **good}, timeout=10)
        assert r.status_code == 403, r.text
        assert r.json() == {"error": "inventory_method_not_allowed", "method": "tools/call"}
    bad = httpx2.post(url, content=b"{not json", headers={**JSON, **good}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"] == "rpc_inspection_failed"
    assert httpx2.put(url, content=json.dumps(LIST), headers={**JSON, **good}, timeout=10).status_code == 405
    text = httpx2.get(sidecar_stack.metrics_url("server-a"), timeout=10).text
    for result in ("unauthorized", "method_not_allowed", "bad_request"):
        assert f'mcp_gateway_inventory_requests_total{{result="{result}"}}' in text


async def test_disabled_without_a_token_and_the_token_never_reaches_the_server(tmp_path: Path) -> None:
    ports = Ports.free()
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        body = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": body.get("id"), "result": {"tools": [{"name": "x"}]}})

    app = web.Application()
    app.router.add_post("/mcp", echo)
    runner = await serve_app(app, ports.sample_mcp)
    base_env = {"METRICS_PORT": str(ports.sidecar_a_metrics), "LISTEN_HOST": "127.0.0.1",
                "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}", "POLICY_FILE": str(POLICY)}
    off = await asyncio.to_thread(SidecarProcess, {**base_env, "PORT": str(ports.sidecar_a)}, tmp_path / "off.log")
    try:
        url = f"http://127.0.0.1:{ports.sidecar_a}/.sentinel/inventory/mcp"
        r = httpx2.post(url, content=json.dumps(LIST), headers={**JSON, TOKEN_HEADER: "anything"}, timeout=10)
        assert r.status_code == 404 and r.json() == {"error": "inventory_disabled"}
    finally:
        off.stop()
    on = await asyncio.to_thread(
        SidecarProcess,
        {**base_env, "PORT": str(ports.sidecar_b), "METRICS_PORT": str(ports.sidecar_b_metrics),
         "INVENTORY_TOKEN": "s3cret"},
        tmp_path / "on.log",
    )
    try:
        url = f"http://127.0.0.1:{ports.sidecar_b}/.sentinel/inventory/mcp"
        r = await asyncio.to_thread(
            httpx2.post, url, content=json.dumps(LIST), headers={**JSON, TOKEN_HEADER: "s3cret", **ALICE}, timeout=10
        )
        assert r.status_code == 200, r.text
        assert r.json()["result"]["tools"] == [{"name": "x"}]  # unfiltered: "x" is in no grant
        (headers,) = seen
        lowered = {k.lower() for k in headers}
        assert TOKEN_HEADER.lower() not in lowered and "x-mcp-human-id" not in lowered
    finally:
        on.stop()
        await runner.cleanup()


def test_the_upstream_probe_agent_id_is_audited_like_anyone(sidecar_stack: SidecarStack) -> None:
    # Upstream skipped auditing any request whose agent id was the probe's; in header mode anyone can claim it.
    before = _spooled(sidecar_stack, "server-a")
    claimed = {**ALICE, "X-MCP-Agent-ID": "mcp-runtime-live-inventory"}
    r = httpx2.post(sidecar_stack.url("server-a"), content=json.dumps(LIST), headers={**JSON, **claimed}, timeout=10)
    assert r.status_code < 500  # the sample server wants a session first (400); what matters is the audit
    deadline = time.monotonic() + 5
    while _spooled(sidecar_stack, "server-a") <= before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _spooled(sidecar_stack, "server-a") > before
