"""The seed isolation matrix through real sidecars and the real sample server, with the official mcp client."""

from __future__ import annotations

import json

import httpx2
import pytest

from tests.fixtures.sidecar import ALICE, BOB, SidecarStack, mcp_client

MODES = ["legacy", "2026-07-28"]


def _call(url: str, headers: dict[str, str], tool: str, args: dict[str, object] | None = None) -> httpx2.Response:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    params = {"name": tool, "arguments": args or {}, "_meta": meta}
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    h = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
        **headers,
    }
    return httpx2.post(url, content=json.dumps(body), headers=h, timeout=30)


@pytest.mark.parametrize("mode", MODES)
async def test_alice_reads_on_server_a_with_official_client(sidecar_stack: SidecarStack, mode: str) -> None:
    async with mcp_client(sidecar_stack.url("server-a"), ALICE, mode=mode) as client:
        result = await client.call_tool("read_document", {"title": "welcome"})
        assert not result.is_error
        assert "Welcome to the workspace" in result.content[0].text
        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        # tools/list shows exactly what alice may call (§11.14): no delete/archive.
        assert "read_document" in names and "create_document" in names
        assert "delete_document" not in names and "archive_document" not in names


@pytest.mark.parametrize("mode", MODES)
async def test_denials_reach_official_client_as_errors(sidecar_stack: SidecarStack, mode: str) -> None:
    async with mcp_client(sidecar_stack.url("server-a"), ALICE, mode=mode) as client:
        with pytest.raises(Exception) as info:
            await client.call_tool("delete_document", {"title": "welcome"})
        assert "tool_not_granted" in str(info.value) or "403" in str(info.value)
        # The denied call never reached the upstream: the document still exists.
        result = await client.call_tool("read_document", {"title": "welcome"})
        assert not result.is_error


@pytest.mark.parametrize(
    ("server", "who", "tool", "status", "reason"),
    [
        ("server-a", ALICE, "read_document", 200, None),
        ("server-a", ALICE, "delete_document", 403, "tool_not_granted"),
        ("server-b", ALICE, "read_document", 401, "session_not_found"),
        ("server-a", BOB, "read_document", 401, "session_not_found"),
        ("server-b", BOB, "read_document", 200, None),
        ("server-a", {**ALICE, "X-MCP-Agent-Session": "sess-nope"}, "read_document", 401, "session_not_found"),
        ("server-a", {"X-MCP-Agent-Session": "sess-alice-a"}, "read_document", 401, "missing_identity"),
        (
            "server-a",
            {k: v for k, v in ALICE.items() if k != "X-MCP-Agent-Session"},
            "read_document",
            401,
            "missing_session",
        ),
    ],
)
def test_matrix_status_and_jsonrpc_error_body(
    sidecar_stack: SidecarStack, server: str, who: dict[str, str], tool: str, status: int, reason: str | None
) -> None:
    # The 2026-07-28 era needs no handshake, so a bare POST is a complete tool call.
    resp = _call(sidecar_stack.url(server), {**who, "MCP-Protocol-Version": "2026-07-28"}, tool, {"title": "welcome"})
    assert resp.status_code == status, resp.text
    if reason is None:
        return
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == 7
    assert body["error"]["data"]["reason"] == reason
    assert body["error"]["code"] in (-32001, -32003)
    if reason in ("missing_identity", "missing_session"):
        assert body["error"]["data"]["required_headers"][0] == "X-MCP-Human-ID"


def test_metrics_only_on_metrics_port(sidecar_stack: SidecarStack) -> None:
    text = httpx2.get(sidecar_stack.metrics_url("server-a"), timeout=10).text
    assert "mcp_gateway_requests_total" in text
    assert "mcp_gateway_policy_reloads_total" in text
    assert "mcp_gateway_audit_spool_depth" in text
    # The public port proxies /metrics to the upstream instead of exposing Prometheus data (§11.17).
    public = httpx2.get(sidecar_stack.url("server-a", "/metrics"), timeout=10)
    assert "mcp_gateway_requests_total" not in public.text
    status = httpx2.get(sidecar_stack.url("server-a", "/.sentinel/config/status"), timeout=10).json()
    assert status["ready"] is True and status["revision"].startswith("sha256:")
    assert "grants" not in status and "sessions" not in status
