"""Issue 13, items 1, 2 and 7: every path a caller can take through the gateway is decided, or refused.

Each test drives a real sidecar process in front of a permissive upstream (tests/helpers/permissive.py)
that executes whatever reaches it, and checks both sides: what the caller got back, and what the
upstream executed. On the code before this change each of these was a bypass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.helpers.permissive import ALICE_ID, ALICE_SEES, BOB_ID, JSON_HDRS, Rig, compress, start_rig

CODINGS = ("gzip", "deflate", "br", "zstd")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    yield from start_rig(tmp_path_factory.mktemp("coverage"))


def _rpc(method: str, params: dict[str, Any] | None = None, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}


DELETE_DOC = _rpc("tools/call", {"name": "delete_document", "arguments": {"title": "welcome"}}, id_="kill")


def _executed(rig: Rig, since: int) -> list[tuple[str, str]]:
    return [(verb, m["method"]) for verb, m in rig.upstream.seen[since:]]


def _names(result: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in ("tools", "prompts", "resourceTemplates"):
        if key in result:
            out[key] = [i["name"] for i in result[key]]
    if "resources" in result:
        out["resources"] = [i["uri"] for i in result["resources"]]
    return out


def _sse_docs(text: str) -> list[Any]:
    docs = []
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = [ln[5:].strip() for ln in event.split("\n") if ln.startswith("data:")]
        if data:
            docs.append(json.loads("\n".join(data)))
    return docs


# -- item 1: every verb that carries a body is decided or refused ---------------------------------


@pytest.mark.parametrize("verb", ["GET", "DELETE", "OPTIONS", "HEAD", "PUT", "PATCH", "POST", "PROPFIND"])
@pytest.mark.parametrize("who", ["alice", "bob", "nobody"])
def test_every_verb_with_a_denied_tool_call_is_refused_and_audited(rig: Rig, verb: str, who: str) -> None:
    ident = {"alice": ALICE_ID, "bob": BOB_ID, "nobody": {}}[who]
    n, a = len(rig.upstream.seen), len(rig.audit())
    r = httpx2.request(verb, rig.url, content=json.dumps(DELETE_DOC), headers={**JSON_HDRS, **ident}, timeout=30)
    assert r.status_code in (400, 401, 403), (verb, r.status_code, r.text)
    if verb != "HEAD":
        assert r.json()["error"]["data"]["reason"]
    assert _executed(rig, n) == []  # the upstream never ran it
    events = rig.audit()[a:]
    assert len(events) == 1 and events[0]["decision"] == "deny" and events[0]["method"] == verb, events


def test_a_body_on_get_is_refused_even_when_the_call_would_be_allowed(rig: Rig) -> None:
    n = len(rig.upstream.seen)
    search = _rpc("tools/call", {"name": "search", "arguments": {}})
    r = httpx2.request("GET", rig.url, content=json.dumps(search), headers={**JSON_HDRS, **ALICE_ID}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["data"]["reason"] == "body_not_allowed"
    assert _executed(rig, n) == []
    r = httpx2.request("PUT", rig.url, content=json.dumps(search), headers={**JSON_HDRS, **ALICE_ID}, timeout=30)
    assert r.status_code == 200 and _executed(rig, n) == [("PUT", "tools/call")]  # PUT/PATCH: decided like POST


@pytest.mark.parametrize(
    "body",
    [
        # decided as `search` by a last-wins parser, run as `delete_document` by a first-wins upstream
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_document","name":"search"}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list","params":{"name":"delete_document"}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"a","q":"b"}}}',
        '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call",'
        '"params":{"n\\u0061me":"delete_document","name":"search"}}]',
    ],
)
def test_repeated_json_keys_are_refused_and_audited(rig: Rig, body: str) -> None:
    n, a = len(rig.upstream.seen), len(rig.audit())
    r = httpx2.post(rig.url, content=body, headers={**JSON_HDRS, **ALICE_ID}, timeout=30)
    assert r.status_code == 400, r.text
    assert "duplicate key" in r.json()["error"]["message"]
    assert _executed(rig, n) == []
    events = rig.audit()[a:]
    assert len(events) == 1 and events[0]["decision"] == "deny", events


@pytest.mark.parametrize(
    "body",
    [
        # a Go upstream matches keys case-insensitively: it reads `NAME` (the last) as the tool name
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","NAME":"delete_document"}}',
        # ... and `METHOD` as the method of what this gateway would take for a response
        '{"jsonrpc":"2.0","id":1,"result":{},"METHOD":"tools/call","PARAMS":{"NAME":"delete_document"}}',
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","param\u017f":{"name":"delete_document"}}',
    ],
)
def test_protocol_keys_in_another_case_are_refused_and_audited(rig: Rig, body: str) -> None:
    n, a, sent = len(rig.upstream.seen), len(rig.audit()), len(rig.upstream.requests)
    r = httpx2.post(rig.url, content=body.encode(), headers={**JSON_HDRS, **ALICE_ID}, timeout=30)
    assert r.status_code == 400, r.text
    assert "only in case" in r.json()["error"]["message"]
    assert _executed(rig, n) == [] and rig.upstream.requests[sent:] == []
    events = rig.audit()[a:]
    assert len(events) == 1 and events[0]["decision"] == "deny", events


# -- item 1: request content codings -----------------------------------------------------------------


@pytest.mark.parametrize("coding", [*CODINGS, "gzip, br", "x-gzip"])
def test_encoded_request_bodies_are_decoded_and_decided(rig: Rig, coding: str) -> None:
    n = len(rig.upstream.seen)
    raw = json.dumps(DELETE_DOC).encode()
    for c in (x.strip() for x in coding.split(",")):
        raw = compress(raw, c)
    hdrs = {**JSON_HDRS, **ALICE_ID, "Content-Encoding": coding}
    r = httpx2.post(rig.url, content=raw, headers=hdrs, timeout=30)
    assert r.status_code == 403 and r.json()["error"]["data"]["reason"] == "side_effect_not_allowed", r.text
    assert _executed(rig, n) == []
    # An allowed call is forwarded decoded, without the Content-Encoding header.
    ok = compress(json.dumps(_rpc("tools/call", {"name": "search"}, id_=5)).encode(), "gzip")
    r = httpx2.post(rig.url, content=ok, headers={**hdrs, "Content-Encoding": "gzip"}, timeout=30)
    assert r.status_code == 200, r.text
    assert _executed(rig, n) == [("POST", "tools/call")]
    assert "content-encoding" not in rig.upstream.requests[-1][1]


@pytest.mark.parametrize(
    ("coding", "body", "status", "reason"),
    [
        ("compress", b"x", 415, "unsupported_content_encoding"),
        ("gzip, x-custom", b"x", 415, "unsupported_content_encoding"),
        ("gzip", b"not gzip at all", 400, "undecodable_body"),
        ("gzip", compress(b"{}", "gzip") + b'{"jsonrpc":"2.0","id":1,"method":"tools/call"}', 400, "undecodable_body"),
        ("gzip", compress(b" " * (2 * 1024 * 1024), "gzip"), 413, "body_too_large"),  # a small bomb
    ],
)
def test_undecodable_request_bodies_are_refused(rig: Rig, coding: str, body: bytes, status: int, reason: str) -> None:
    n, a = len(rig.upstream.seen), len(rig.audit())
    r = httpx2.post(rig.url, content=body, headers={**JSON_HDRS, **ALICE_ID, "Content-Encoding": coding}, timeout=30)
    assert r.status_code == status and r.json()["error"]["data"]["reason"] == reason, r.text
    assert _executed(rig, n) == []
    assert [e["reason"] for e in rig.audit()[a:]] == [reason]


# -- item 1: answers the gateway filters, in every coding -----------------------------------------


@pytest.mark.parametrize("answer", ["json", "sse"])
@pytest.mark.parametrize("coding", ["", *CODINGS])
@pytest.mark.parametrize("forced", [False, True], ids=["accepted", "forced"])
def test_list_answers_are_filtered_in_every_encoding(rig: Rig, answer: str, coding: str, forced: bool) -> None:
    if forced and not coding:
        pytest.skip("nothing to force")
    hdrs = {**JSON_HDRS, **ALICE_ID, "Accept-Encoding": coding or "identity", "X-Answer": answer}
    if forced:
        hdrs["X-Force-Encoding"] = coding  # an upstream that compresses although asked for identity
    for method, key in (("tools/list", "tools"), ("prompts/list", "prompts"), ("resources/list", "resources"),
                        ("resources/templates/list", "resourceTemplates")):
        r = httpx2.post(rig.url, content=json.dumps(_rpc(method, id_=method)), headers=hdrs, timeout=30)
        assert r.status_code == 200, r.text
        assert "content-encoding" not in r.headers  # sent decoded (it was rewritten)
        doc = _sse_docs(r.text)[0] if answer == "sse" else r.json()
        assert _names(doc["result"]) == {key: ALICE_SEES[key]}, (method, doc)


@pytest.mark.parametrize("answer", ["json", "sse"])
def test_a_list_answer_in_an_unknown_coding_is_never_relayed(rig: Rig, answer: str) -> None:
    hdrs = {**JSON_HDRS, **ALICE_ID, "X-Answer": answer, "X-Force-Encoding": "x-bogus"}
    r = httpx2.post(rig.url, content=json.dumps(_rpc("tools/list")), headers=hdrs, timeout=30)
    assert "delete_document" not in r.text
    if answer == "json":
        assert r.status_code == 502 and r.json()["error"]["data"]["reason"] == "upstream_answer_unfilterable"
    else:
        assert r.status_code == 200 and _sse_docs(r.text) == []  # the stream ends before anything unread


def test_batched_list_requests_are_all_filtered(rig: Rig) -> None:
    batch = [_rpc("tools/list", id_=1), _rpc("prompts/list", id_="two"), _rpc("ping", id_=None)]
    r = httpx2.post(rig.url, content=json.dumps(batch), headers={**JSON_HDRS, **ALICE_ID}, timeout=30)
    by_id = {d["id"]: d for d in r.json()}
    assert _names(by_id[1]["result"]) == {"tools": ["search"]}
    assert _names(by_id["two"]["result"]) == {"prompts": ["summary"]}


# -- item 1: resumed GET streams ------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["", *CODINGS])
def test_resumed_get_streams_are_filtered(rig: Rig, coding: str) -> None:
    hdrs = {"Accept": "text/event-stream", "Last-Event-ID": "ev-0", **ALICE_ID}
    if coding:
        hdrs.update({"Accept-Encoding": coding, "X-Force-Encoding": coding})
    r = httpx2.get(rig.url, headers=hdrs, timeout=30)
    assert r.status_code == 200, r.text
    docs = _sse_docs(r.text)
    lists = [_names(d["result"]) for d in docs if "result" in d]
    assert lists == [{k: v} for k, v in ALICE_SEES.items()]
    assert any(d.get("method") == "notifications/message" for d in docs)  # other messages pass


def test_get_streams_need_an_identity_and_are_audited(rig: Rig) -> None:
    a = len(rig.audit())
    r = httpx2.get(rig.url, headers={"Accept": "text/event-stream", "Last-Event-ID": "ev-0"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["data"]["reason"] == "missing_identity"
    assert "tools" not in r.text
    ev = rig.audit()[a:]
    assert [(e["method"], e["decision"], e["reason"]) for e in ev] == [("GET", "deny", "missing_identity")]


# -- item 2: Origin and Host -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example.com", "Origin": "http://evil.example.com"},
        {"Host": "evil.example.com"},
        {"Origin": "http://evil.example.com"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1.evil.example.com"},
        {"Host": "127.0.0.1.evil.example.com"},
    ],
)
def test_foreign_origin_or_host_is_refused_and_audited(rig: Rig, headers: dict[str, str]) -> None:
    n, a = len(rig.upstream.seen), len(rig.audit())
    body = json.dumps(_rpc("tools/call", {"name": "search"}))
    r = httpx2.post(rig.url, content=body, headers={**JSON_HDRS, **ALICE_ID, **headers}, timeout=30)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["data"]["reason"] in ("host_not_allowed", "origin_not_allowed")
    assert _executed(rig, n) == []
    assert [e["decision"] for e in rig.audit()[a:]] == ["deny"]


def test_loopback_origins_and_hosts_are_served(rig: Rig) -> None:
    body = json.dumps(_rpc("tools/call", {"name": "search"}))
    for extra in ({"Origin": "http://localhost:3000"}, {"Host": f"localhost:{rig.port}"}, {"Origin": "http://[::1]"}):
        r = httpx2.post(rig.url, content=body, headers={**JSON_HDRS, **ALICE_ID, **extra}, timeout=30)
        assert r.status_code == 200, (extra, r.text)


def test_configured_public_names_are_served(tmp_path: Path) -> None:
    env = {"EXTERNAL_BASE_URL": "https://mcp.example.com/server-a", "ALLOWED_HOSTS": "server-a.ns.svc:*"}
    for rig in start_rig(tmp_path, env):
        body = json.dumps(_rpc("tools/call", {"name": "search"}))
        for extra, status in (
            ({"Host": "mcp.example.com", "Origin": "https://mcp.example.com"}, 200),
            ({"Host": "mcp.example.com:443"}, 200),
            ({"Host": "server-a.ns.svc:8091"}, 200),
            ({"Origin": "http://mcp.example.com"}, 403),  # scheme is part of the origin
            ({"Host": "mcp.example.com:8443"}, 403),
        ):
            r = httpx2.post(rig.url, content=body, headers={**JSON_HDRS, **ALICE_ID, **extra}, timeout=30)
            assert r.status_code == status, (extra, r.text)


# -- item 7: prompts and resources -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "who", "status", "reason"),
    [
        ("prompts/get", {"name": "summary"}, {}, 401, "missing_identity"),
        ("prompts/get", {"name": "summary"}, BOB_ID, 403, "no_matching_grant"),
        ("prompts/get", {"name": "secret"}, ALICE_ID, 403, "trust_too_low"),
        ("prompts/get", {"name": "undeclared"}, ALICE_ID, 403, "prompt_side_effect_unknown"),
        ("resources/read", {"uri": "file:///readme.md"}, {}, 401, "missing_identity"),
        ("resources/read", {"uri": "vault://k1"}, ALICE_ID, 403, "trust_too_low"),
        ("resources/read", {"uri": "file:///etc/passwd"}, ALICE_ID, 403, "resource_side_effect_unknown"),
        ("tools/list", {}, {}, 401, "missing_identity"),
        ("resources/list", {}, {}, 401, "missing_identity"),
        ("completion/complete", {}, {}, 401, "missing_identity"),
    ],
)
def test_prompts_resources_and_lists_are_decided_and_audited(
    rig: Rig, method: str, params: dict[str, Any], who: dict[str, str], status: int, reason: str
) -> None:
    n, a = len(rig.upstream.seen), len(rig.audit())
    r = httpx2.post(rig.url, content=json.dumps(_rpc(method, params, id_=3)), headers={**JSON_HDRS, **who}, timeout=30)
    assert r.status_code == status, r.text
    assert r.json()["error"]["data"]["reason"] == reason and r.json()["id"] == 3
    assert _executed(rig, n) == []
    ev = rig.audit()[a:]
    assert [(e["rpc_method"], e["decision"], e["reason"]) for e in ev] == [(method, "deny", reason)]


def test_granted_prompts_and_resources_pass_and_are_audited_once(rig: Rig) -> None:
    n, a = len(rig.upstream.seen), len(rig.audit())
    for method, params in (("prompts/get", {"name": "summary"}), ("resources/read", {"uri": "file:///readme.md"})):
        r = httpx2.post(rig.url, content=json.dumps(_rpc(method, params)), headers={**JSON_HDRS, **ALICE_ID},
                        timeout=30)
        assert r.status_code == 200, r.text
    assert _executed(rig, n) == [("POST", "prompts/get"), ("POST", "resources/read")]
    ev = rig.audit()[a:]
    assert [(e["rpc_method"], e["decision"]) for e in ev] == [("prompts/get", "allow"), ("resources/read", "allow")]
    assert ev[0]["prompt_name"] == "summary" and ev[1]["resource_uri"] == "file:///readme.md"


def test_handshake_needs_no_identity(rig: Rig) -> None:
    for method in ("initialize", "ping"):
        r = httpx2.post(rig.url, content=json.dumps(_rpc(method)), headers=JSON_HDRS, timeout=30)
        assert r.status_code == 200, r.text
    r = httpx2.post(rig.url, content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    headers=JSON_HDRS, timeout=30)
    assert r.status_code == 202
