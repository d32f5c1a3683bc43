"""Transparent streamable HTTP and every bad-input path, through a real sidecar and the real sample server."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2

from tests.fixtures.sidecar import ALICE, SidecarStack, mcp_client

META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
BASE = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2026-07-28",
    **ALICE,
}


def _post(url: str, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> httpx2.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx2.post(url, content=content, headers={**BASE, **(headers or {})}, timeout=30)


def _tool(name: str, args: dict[str, Any], id_: int = 1, token: str | None = None) -> dict[str, Any]:
    meta = dict(META)
    if token:
        meta["progressToken"] = token
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {"name": name, "arguments": args, "_meta": meta},
    }


def test_sse_progress_streams_incrementally(sidecar_stack: SidecarStack) -> None:
    arrivals: list[tuple[float, dict[str, Any]]] = []
    headers = {**BASE, "Mcp-Method": "tools/call", "Mcp-Name": "summarize_workspace"}
    body = json.dumps(_tool("summarize_workspace", {"steps": 6}, token="p1"))
    t0 = time.monotonic()
    with httpx2.stream("POST", sidecar_stack.url("server-a"), content=body, headers=headers, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data:"):
                arrivals.append((time.monotonic() - t0, json.loads(line[5:])))  # noqa: PERF401 - timing per line
    progress = [m for _t, m in arrivals if m.get("method") == "notifications/progress"]
    assert [p["params"]["progress"] for p in progress] == [1, 2, 3, 4, 5, 6]
    final = arrivals[-1][1]
    assert final["id"] == 1 and "result" in final
    # Unbuffered: the first progress event arrived well before the final result (6 steps x 50 ms).
    assert arrivals[-1][0] - arrivals[0][0] >= 0.2


async def test_legacy_progress_and_session_through_official_client(sidecar_stack: SidecarStack) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with mcp_client(sidecar_stack.url("server-a"), ALICE, mode="legacy") as client:
        result = await client.call_tool("summarize_workspace", {"steps": 3}, progress_callback=on_progress)
        assert not result.is_error
    assert seen == [1, 2, 3]


def test_bad_inputs_get_clear_jsonrpc_errors(sidecar_stack: SidecarStack) -> None:
    url = sidecar_stack.url("server-a")
    cases = [
        (_post(url, None, raw=b"{not json"), 400, -32700),
        (_post(url, None, raw=b""), 400, -32600),
        (_post(url, None, raw=b"[]"), 400, -32600),
        (_post(url, {"jsonrpc": "2.0", "id": 3}), 400, -32600),
        (_post(url, {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": ["x"]}), 400, -32602),
        (_post(url, {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"arguments": {}}}), 400, -32602),
        (_post(url, None, raw=b'{"a":1}', headers={"Content-Type": "text/plain"}), 415, -32600),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, resp.text
        err = resp.json()["error"]
        assert err["code"] == code and err["data"]["reason"] == "rpc_inspection_failed" and err["message"]
    assert cases[4][0].json()["id"] == 4


def test_huge_body_is_413_not_5xx(sidecar_stack: SidecarStack) -> None:
    big = json.dumps(_tool("search", {"query": "x" * (1024 * 1024 + 10)})).encode()
    resp = _post(sidecar_stack.url("server-a"), None, raw=big)
    assert resp.status_code == 413
    assert resp.json()["error"]["data"]["reason"] == "body_too_large"


def test_unknown_method_is_forwarded_to_upstream(sidecar_stack: SidecarStack) -> None:
    body = {"jsonrpc": "2.0", "id": 9, "method": "no/such/method", "params": {"_meta": META}}
    resp = _post(sidecar_stack.url("server-a"), body, headers={"Mcp-Method": "no/such/method"})
    assert resp.status_code < 500
    assert resp.json()["error"]["code"] == -32601  # the upstream's "method not found", untouched


def test_mcp_name_header_mismatch_is_rejected(sidecar_stack: SidecarStack) -> None:
    body = _tool("delete_document", {"title": "welcome"}, id_=11)
    resp = _post(sidecar_stack.url("server-a"), body, headers={"Mcp-Method": "tools/call", "Mcp-Name": "search"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == -32020 and resp.json()["id"] == 11
    resp = _post(
        sidecar_stack.url("server-a"), body, headers={"Mcp-Method": "tools/list", "Mcp-Name": "delete_document"}
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32020


def test_batch_with_a_denied_call_forwards_nothing(sidecar_stack: SidecarStack) -> None:
    batch = [
        _tool("create_document", {"title": "batch-doc", "body": "x"}, id_=1),
        _tool("delete_document", {"title": "welcome"}, id_=2),
    ]
    resp = _post(sidecar_stack.url("server-a"), batch)
    assert resp.status_code == 403
    out = {m["id"]: m["error"]["data"]["reason"] for m in resp.json()}
    assert out == {1: "batch_rejected", 2: "tool_not_granted"}
    # Nothing reached the upstream: the allowed half of the batch did not create its document.
    check = _post(
        sidecar_stack.url("server-a"),
        _tool("read_document", {"title": "batch-doc"}, id_=3),
        headers={"Mcp-Method": "tools/call", "Mcp-Name": "read_document"},
    )
    assert check.json()["result"]["isError"] is True  # read_document: no such document


def test_client_jsonrpc_response_is_forwarded_not_rejected(sidecar_stack: SidecarStack) -> None:
    # A client answering a server->client request (sampling/elicitation) has no method (§11.12).
    resp = _post(sidecar_stack.url("server-a"), {"jsonrpc": "2.0", "id": "srv-1", "result": {}})
    assert resp.status_code != 403 and resp.status_code < 500
    assert "rpc_inspection_failed" not in resp.text


def test_host_rewritten_and_foreign_host_or_origin_refused(sidecar_stack: SidecarStack) -> None:
    body = _tool("list_documents", {}, id_=20)
    hdrs = {"Mcp-Method": "tools/call", "Mcp-Name": "list_documents"}
    # A Host name the gateway serves but the upstream would refuse (its allow-list wants a port) must
    # not trip the upstream's DNS-rebinding Host check: the sidecar sends the upstream's own Host...
    ok = _post(sidecar_stack.url("server-a"), body, headers={**hdrs, "Host": "localhost"})
    assert ok.status_code == 200, ok.text
    # ...while a foreign Host or a hostile browser Origin is refused by the gateway itself (issue 13).
    for extra in ({"Host": "mcp.example.com"}, {"Origin": "http://evil.example"}):
        bad = _post(sidecar_stack.url("server-a"), body, headers={**hdrs, **extra})
        assert bad.status_code == 403, bad.text
        assert bad.json()["error"]["data"]["reason"] in ("host_not_allowed", "origin_not_allowed")


def test_get_and_delete_are_proxied(sidecar_stack: SidecarStack) -> None:
    # Legacy handshake to get a session id, then DELETE it through the sidecar.
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    hdrs = {k: v for k, v in BASE.items() if k != "MCP-Protocol-Version"}
    r = httpx2.post(sidecar_stack.url("server-a"), content=json.dumps(init), headers=hdrs, timeout=30)
    assert r.status_code == 200
    sid = r.headers["mcp-session-id"]
    d = httpx2.delete(sidecar_stack.url("server-a"), headers={**hdrs, "Mcp-Session-Id": sid}, timeout=30)
    assert d.status_code == 200
    again = httpx2.delete(sidecar_stack.url("server-a"), headers={**hdrs, "Mcp-Session-Id": sid}, timeout=30)
    assert again.status_code == 404


def test_upstream_down_is_502_jsonrpc(tmp_path: Any) -> None:
    from localstack.config import Ports
    from tests.fixtures.sidecar import SidecarProcess

    ports = Ports.free()
    policy = tmp_path / "p.json"
    policy.write_bytes(open("examples/policies/server-a.json", "rb").read())
    sc = SidecarProcess(
        {
            "PORT": str(ports.sidecar_a),
            "METRICS_PORT": str(ports.sidecar_a_metrics),
            "LISTEN_HOST": "127.0.0.1",
            "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
            "POLICY_FILE": str(policy),
        },
        tmp_path / "sc.log",
    )
    try:
        resp = httpx2.post(
            f"http://127.0.0.1:{ports.sidecar_a}/mcp",
            content=json.dumps(_tool("search", {"query": "a"}, id_=42)),
            headers={**BASE, "Mcp-Method": "tools/call", "Mcp-Name": "search"},
            timeout=30,
        )
        assert resp.status_code == 502
        assert resp.json()["id"] == 42 and resp.json()["error"]["data"]["reason"] == "upstream_unavailable"
    finally:
        sc.stop()
