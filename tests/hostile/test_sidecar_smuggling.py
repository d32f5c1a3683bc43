"""Header and framing attacks through a real sidecar in front of the real sample MCP server.

Expectation everywhere: no 5xx, no crash, no allow. "No allow" is checked on the upstream's state
(a canary document that a denied call would delete or create), not only on the status code.
"""

from __future__ import annotations

import base64
import json
import uuid

import httpx2
import pytest

from tests.fixtures.sidecar import BOB, SidecarStack
from tests.helpers.wire import BASE, META, doc_exists, post, raw_http, rpc_headers, statuses, tool_call


def _port(stack: SidecarStack) -> int:
    return stack.cfg.ports.sidecar_a


def _alive(stack: SidecarStack) -> None:
    r = httpx2.get(stack.url("server-a", "/.sentinel/health"), timeout=10)
    assert r.status_code == 200


def _seed(stack: SidecarStack) -> str:
    """A fresh canary document Alice created (so a destructive call has something to destroy)."""
    title = f"canary-{uuid.uuid4().hex[:8]}"
    r = post(stack.url("server-a"), tool_call("create_document", {"title": title, "body": "x"}))
    assert r.status_code == 200 and r.json()["result"]["isError"] is False, r.text
    return title


def test_duplicate_identity_headers_never_widen_access(sidecar_stack: SidecarStack) -> None:
    url = sidecar_stack.url("server-a")
    canary = _seed(sidecar_stack)
    call = tool_call("create_document", {"title": f"dup-{canary}", "body": "x"})
    body = json.dumps(call).encode()
    base = [(k, v) for k, v in {**BASE, **rpc_headers(call)}.items() if not k.startswith("X-MCP")]
    # Bob (no grant on server-a) smuggles a second Human-ID after his own, and the other way round.
    for order in (("bob", "alice"), ("alice", "bob")):
        headers = [*base, ("X-MCP-Human-ID", order[0]), ("X-MCP-Human-ID", order[1])]
        headers += [("X-MCP-Agent-ID", "workspace-agent"), ("X-MCP-Agent-Session", "sess-alice-a")]
        r = httpx2.post(url, content=body, headers=headers, timeout=30)
        assert r.status_code < 500, r.text
        assert r.status_code == 400, f"ambiguous identity {order} was not refused: {r.text}"
        assert r.json()["error"]["data"]["reason"] == "ambiguous_identity"
    assert not doc_exists(url, f"dup-{canary}")


def test_mcp_name_header_disagreeing_with_body_is_rejected_in_every_spelling(sidecar_stack: SidecarStack) -> None:
    url = sidecar_stack.url("server-a")
    canary = _seed(sidecar_stack)
    body = tool_call("delete_document", {"title": canary}, id_=7)
    for name in ("search", "SEARCH", "delete_document\u200b", "delete_documen", "*"):
        r = post(url, body, {"Mcp-Method": "tools/call", "Mcp-Name": name.encode()})  # type: ignore[dict-item]
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"]["code"] == -32020
    # The Base64 form (MCP 2026-07-28) is decoded before comparing: encoding a harmless name does not help.
    for encoded in ("=?base64?" + base64.b64encode(b"search").decode() + "?=", "=?base64?c2VhcmNo?"):
        r = post(url, body, {"Mcp-Method": "tools/call", "Mcp-Name": encoded})
        assert r.status_code == 400 and r.json()["error"]["code"] == -32020, (encoded, r.text)
    r = post(url, body, {"Mcp-Method": "tools/list"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    assert doc_exists(url, canary)
    # And the encoded form of the body's own name is accepted (then the policy decides: alice may search).
    search = tool_call("search", {"query": "a"}, id_=8)
    ok = post(url, search, {"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?c2VhcmNo?="})
    assert ok.status_code == 200, ok.text


def test_oversized_and_numerous_headers_are_refused_cleanly(sidecar_stack: SidecarStack) -> None:
    url = sidecar_stack.url("server-a")
    body = tool_call("search", {"query": "a"})
    huge = post(url, body, {"X-MCP-Human-ID": "alice" + "a" * 70_000})
    assert huge.status_code in (400, 413, 431), huge.status_code
    many = {f"X-Pad-{i}": "y" * 100 for i in range(300)}
    r = post(url, body, many)
    assert r.status_code < 500
    _alive(sidecar_stack)


def test_crlf_injection_cannot_forge_identity_or_split_requests(sidecar_stack: SidecarStack) -> None:
    port = _port(sidecar_stack)
    canary = _seed(sidecar_stack)
    body = json.dumps(tool_call("delete_document", {"title": canary})).encode()
    # A bare LF and an obs-fold continuation trying to smuggle a second identity header.
    for hostile in (
        b"X-MCP-Human-ID: bob\nX-MCP-Human-ID: alice\r\n",
        b"X-MCP-Human-ID: bob\r\n alice\r\n",
        b"X-MCP-Human-ID: alice\rX-Evil: 1\r\n",
    ):
        req = (
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
            b"Mcp-Method: tools/call\r\nMcp-Name: delete_document\r\n"
            b"X-MCP-Agent-ID: workspace-agent\r\nX-MCP-Agent-Session: sess-alice-a\r\n"
            + hostile
            + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )
        got = statuses(raw_http(port, req))
        assert got and all(s < 500 and s != 200 for s in got), (hostile, got)
    # CRLF inside the JSON tool name travels only in the body; it names no known tool.
    r = post(sidecar_stack.url("server-a"), tool_call("delete_document\r\nX-MCP-Human-ID: admin", {"title": canary}))
    assert r.status_code == 403, r.text
    assert doc_exists(sidecar_stack.url("server-a"), canary)
    _alive(sidecar_stack)


def test_content_length_with_transfer_encoding_is_not_desynchronised(sidecar_stack: SidecarStack) -> None:
    port = _port(sidecar_stack)
    canary = _seed(sidecar_stack)
    smuggled = json.dumps(tool_call("delete_document", {"title": canary})).encode()
    inner = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"X-MCP-Human-ID: bob\r\nContent-Length: " + str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled
    )
    ping = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": META}}).encode()
    # CL.TE: the front end honours Content-Length, a back end honouring chunked would see `inner` as a new request.
    chunk = hex(len(ping))[2:].encode() + b"\r\n" + ping + b"\r\n0\r\n\r\n"
    req = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(chunk)).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + inner
    )
    got = statuses(raw_http(port, req))
    assert all(s < 500 for s in got), got
    # TE.CL: duplicated/obfuscated Transfer-Encoding.
    req2 = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 4\r\n\r\n" + chunk + inner
    )
    got2 = statuses(raw_http(port, req2))
    assert all(s < 500 for s in got2), got2
    assert doc_exists(sidecar_stack.url("server-a"), canary), "a smuggled destructive call reached the upstream"
    _alive(sidecar_stack)


@pytest.mark.parametrize("verb", ["PUT", "PATCH", "DELETE", "OPTIONS"])
def test_jsonrpc_via_other_verbs_is_not_ungoverned(sidecar_stack: SidecarStack, verb: str) -> None:
    url = sidecar_stack.url("server-a")
    canary = _seed(sidecar_stack)
    r = post(url, tool_call("delete_document", {"title": canary}), method=verb)
    assert r.status_code < 500, r.text
    assert r.status_code != 200 or "deleted" not in r.text
    assert doc_exists(url, canary), f"{verb} carried a denied tools/call past governance"


@pytest.mark.parametrize(
    "name",
    [
        "delete_dоcument",  # Cyrillic о
        "ｄelete_document",  # fullwidth d (NFKC folds to delete_document)
        "delete_document\u200b",  # zero-width space
        "Delete_Document",
        "delete_document ",
        "delete\u0000document",
    ],
)
def test_unicode_confusable_tool_names_are_denied(sidecar_stack: SidecarStack, name: str) -> None:
    url = sidecar_stack.url("server-a")
    canary = _seed(sidecar_stack)
    r = post(url, tool_call(name, {"title": canary}))
    assert r.status_code == 403, r.text
    assert doc_exists(url, canary)


def test_confusable_identity_is_not_alice(sidecar_stack: SidecarStack) -> None:
    url = sidecar_stack.url("server-a")
    for human in ("аlice", "ALICE", "alice\u200b"):  # Cyrillic а, case, zero-width
        call = tool_call("search", {"query": "a"})
        r = httpx2.post(
            url,
            content=json.dumps(call).encode(),
            headers={**BASE, **rpc_headers(call), "X-MCP-Human-ID": human.encode("utf-8")},  # type: ignore[dict-item]
            timeout=30,
        )
        assert r.status_code in (401, 403), (human, r.text)


def test_huge_json_nesting_is_400_not_500(sidecar_stack: SidecarStack) -> None:
    url = sidecar_stack.url("server-a")
    depth = 200_000
    nested = (
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"query":'
        + b"[" * depth + b"]" * depth + b"}}}"
    )
    r = post(url, nested)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == -32700
    r = post(url, b"[" * depth + b"]" * depth)
    assert r.status_code == 400
    _alive(sidecar_stack)


def test_bob_on_server_a_is_denied_and_upstream_untouched(sidecar_stack: SidecarStack) -> None:
    url = sidecar_stack.url("server-a")
    canary = _seed(sidecar_stack)
    call = tool_call("delete_document", {"title": canary})
    r = httpx2.post(url, content=json.dumps(call), headers={**BASE, **rpc_headers(call), **BOB}, timeout=30)
    assert r.status_code in (401, 403) and r.json()["error"]["data"]["reason"]
    assert doc_exists(url, canary)
