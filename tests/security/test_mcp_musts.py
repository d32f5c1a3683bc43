"""One named test per MCP security MUST that applies to the gateway (peers.md §3b), against real processes."""

from __future__ import annotations

import json
from typing import Any

import httpx2

from tests.fixtures.sidecar import ALICE, BOB, SidecarStack, mcp_client
from tests.helpers.security_rig import AUD, BOUND_RESOURCE, Rig
from tests.helpers.wire import BASE as SAMPLE_BASE
from tests.helpers.wire import rpc_headers

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _call(name: str, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": {}}}


def _post(url: str, body: Any, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(url, content=json.dumps(body), headers={**JSON, **headers}, timeout=30)


def test_no_token_passthrough(rig: Rig) -> None:
    """MUST 1: the upstream never sees the inbound Authorization (header mode and OAuth mode)."""
    before = len(rig.seen)
    client_secret = "Bearer client-credential-for-somebody-else"
    r = _post(rig.header_url, _call("search", "h"), {**ALICE, "Authorization": client_secret})
    assert r.status_code == 200, r.text
    tok = rig.token()
    r = _post(rig.oauth_url, _call("search", "o"), {"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200, r.text
    reached = rig.seen[before:]
    assert len(reached) == 2
    for s in reached:
        assert "authorization" not in {k.lower() for k in s.headers}, s.headers
        assert tok not in json.dumps(s.headers) and "client-credential" not in json.dumps(s.headers)
    # In OAuth mode the identity the upstream sees comes from the verified token.
    assert reached[1].headers.get("X-MCP-Human-ID") == "alice"


def test_audience_binding(rig: Rig) -> None:
    """MUST 2: only tokens issued for this resource are accepted (configured audience, else the canonical URL)."""
    ok = _post(rig.oauth_url, _call("search"), {"Authorization": f"Bearer {rig.token()}"})
    assert ok.status_code == 200, ok.text
    for aud in ("https://other.example.com", AUD + "/", [AUD.upper()], "", None):
        r = _post(rig.oauth_url, _call("search"), {"Authorization": f"Bearer {rig.token(aud=aud)}"})
        assert r.status_code == 401 and r.json()["error"]["data"]["reason"] == "invalid_token", (aud, r.text)
    # Without a configured audience the server's canonical URL from its policy is the audience (RFC 8707).
    good = _post(rig.bound_url, _call("search"), {"Authorization": f"Bearer {rig.token(aud=BOUND_RESOURCE)}"})
    assert good.status_code == 200, good.text
    meta = "https://mcp.example.com/server-c/.well-known/oauth-protected-resource/mcp"
    # A token for another server (the oauth gateway's audience), and one whose audience is what the
    # request's own Host would make it (every server behind one ingress would share it): both refused.
    for aud in (AUD, rig.bound_url):
        bad = _post(rig.bound_url, _call("search"), {"Authorization": f"Bearer {rig.token(aud=aud)}"})
        assert bad.status_code == 401 and bad.json()["error"]["data"]["reason"] == "invalid_token", (aud, bad.text)
        assert bad.headers["WWW-Authenticate"] == (
            f'Bearer realm="mcp-sentinel", resource_metadata="{meta}", error="invalid_token"'
        )


def test_origin_validation_dns_rebinding(sidecar_stack: SidecarStack) -> None:
    """MUST 6: the upstream's Origin check still protects it through the sidecar (no Host/Origin laundering)."""
    url = sidecar_stack.url("server-a")
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "list_documents", "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}},
    }
    hdrs = {**SAMPLE_BASE, **rpc_headers(body)}
    ok = httpx2.post(url, content=json.dumps(body), headers=hdrs, timeout=30)
    assert ok.status_code == 200, ok.text
    for origin, host in (("http://evil.example", None), ("http://attacker.test:8091", "attacker.test:8091")):
        h = {**hdrs, "Origin": origin}
        if host:
            h["Host"] = host  # a rebinding page: the victim's browser sends the attacker's host name
        r = httpx2.post(url, content=json.dumps(body), headers=h, timeout=30)
        assert r.status_code == 403, (origin, r.status_code, r.text)


def test_header_body_consistency(rig: Rig) -> None:
    """MUST 7: Mcp-Method/Mcp-Name disagreeing with the body → 400 / -32020, and nothing reaches the upstream."""
    before = len(rig.tool_calls_seen())
    body = _call("delete_document", 5)
    for hdrs in (
        {"Mcp-Method": "tools/call", "Mcp-Name": "search"},
        {"Mcp-Method": "tools/list"},
        {"Mcp-Method": "tools/call"},
    ):
        r = _post(rig.header_url, body, {**ALICE, **hdrs})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == -32020 and r.json()["id"] == 5
    assert len(rig.tool_calls_seen()) == before


def test_session_binding_to_authenticated_user(rig: Rig) -> None:
    """MUST 4/5: a session id presented by another identity is not found; OAuth `sid` is bound to `sub`."""
    before = len(rig.tool_calls_seen())
    stolen = {**BOB, "X-MCP-Agent-Session": "sess-alice-a"}
    r = _post(rig.header_url, _call("search"), stolen)
    assert r.status_code == 401 and r.json()["error"]["data"]["reason"] == "session_not_found", r.text
    r = _post(rig.header_url, _call("search"), {**ALICE, "X-MCP-Agent-Session": ""})
    assert r.status_code in (401, 403)
    # OAuth: Bob's valid token claiming Alice's session id.
    r = _post(rig.oauth_url, _call("search"), {"Authorization": f"Bearer {rig.token(sub='bob')}"})
    assert r.status_code == 401 and r.json()["error"]["data"]["reason"] == "session_not_found", r.text
    # A session header cannot override the token's sid, and a session id alone authenticates nothing.
    r = _post(rig.oauth_url, _call("search"), {"X-MCP-Agent-Session": "sess-alice-a", **ALICE})
    assert r.status_code == 401 and r.json()["error"]["data"]["reason"] == "missing_bearer_token"
    assert len(rig.tool_calls_seen()) == before


def test_annotations_untrusted(rig: Rig) -> None:
    """MUST 11: an upstream claiming readOnlyHint for a destructive tool changes nothing."""
    # The rig's upstream annotates every tool readOnlyHint=true, destructiveHint=false.
    listing = _post(rig.header_url, {"jsonrpc": "2.0", "id": "l", "method": "tools/list"}, ALICE)
    assert listing.status_code == 200
    names = [t["name"] for t in listing.json()["result"]["tools"]]
    assert "delete_document" not in names and "archive_document" not in names
    before = len(rig.tool_calls_seen())
    r = _post(rig.header_url, _call("delete_document"), ALICE)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["data"]["reason"] in ("tool_not_granted", "side_effect_not_allowed"), r.text
    assert len(rig.tool_calls_seen()) == before


async def test_per_user_tools_list_filtering(sidecar_stack: SidecarStack) -> None:
    """§3a/§4 #2: tools/list shows exactly what the caller may call, from the same policy evaluation."""
    async with mcp_client(sidecar_stack.url("server-a"), ALICE) as client:
        alice = sorted(t.name for t in (await client.list_tools()).tools)
    assert alice == sorted(
        ["list_documents", "read_document", "search", "summarize_workspace", "create_document", "update_document"]
    )
    async with mcp_client(sidecar_stack.url("server-a"), BOB) as client:
        bob = [t.name for t in (await client.list_tools()).tools]
    assert bob == []
    async with mcp_client(sidecar_stack.url("server-b"), BOB) as client:
        bob_b = {t.name for t in (await client.list_tools()).tools}
    assert bob_b and "delete_document" not in bob_b
