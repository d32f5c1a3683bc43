"""Property: whatever a caller sends, the upstream never runs a call the policy denies, and every call it
does run has exactly one audit event (issue 13).

Hypothesis drives random verbs, content codings, header sets (identity, Origin, Host, Accept-Encoding,
Mcp-Method) and JSON-RPC shapes (single, batch, notifications, odd ids, wrong param types) through a
real sidecar process in front of the permissive upstream (tests/helpers/permissive.py).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_sentinel.policy import AuthzRequest, CompiledPolicy, Identity
from tests.helpers.permissive import ALICE_ID, BOB_ID, Rig, compiled_policy, compress, start_rig


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    yield from start_rig(tmp_path_factory.mktemp("properties"))


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return compiled_policy()


ODD_IDS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=8),
    st.sampled_from([0, -1, 1.5, "", "0", "null", None, "\u202e", 1e300]),
)
TARGETS = st.sampled_from(["search", "delete_document", "summary", "secret", "undeclared", "file:///readme.md",
                           "vault://k1", "file:///etc/passwd", ""])
METHODS = st.sampled_from([
    "tools/call", "call_tool", "prompts/get", "resources/read", "tools/list", "prompts/list", "resources/list",
    "resources/templates/list", "initialize", "ping", "notifications/initialized", "notifications/cancelled",
    "completion/complete", "Tools/Call", "tools/call ", "logging/setLevel",
])


@st.composite
def messages(draw: st.DrawFn) -> Any:
    method = draw(METHODS)
    target = draw(TARGETS)
    key = "uri" if method == "resources/read" else "name"
    params: Any = draw(st.sampled_from([{key: target, "arguments": {}}, {key: 7}, {}, [target], None]))
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if draw(st.booleans()):  # a request; otherwise a notification
        msg["id"] = draw(ODD_IDS)
    if draw(st.integers(0, 15)) == 0:
        return {"jsonrpc": "2.0", "id": draw(ODD_IDS), "result": {}}  # a client's answer to a server request
    return msg


BODIES = st.one_of(messages(), st.lists(messages(), min_size=1, max_size=4), st.none())
CODINGS = st.sampled_from(["", "", "gzip", "deflate", "br", "zstd", "gzip, br", "identity", "x-bogus"])


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    verb = draw(st.sampled_from(["POST", "POST", "POST", "PUT", "PATCH", "GET", "DELETE", "OPTIONS", "HEAD"]))
    body = draw(BODIES)
    coding = draw(CODINGS)
    headers: dict[str, str] = {"Accept": "application/json, text/event-stream"}
    headers.update(draw(st.sampled_from([ALICE_ID, BOB_ID, {}, {"X-MCP-Team-ID": "team-x"}])))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain", "application/json-rpc"]))
    extra = draw(st.sampled_from([
        {}, {"Origin": "http://evil.example.com"}, {"Host": "evil.example.com"}, {"Origin": "http://localhost:9"},
        {"Accept-Encoding": "gzip, br, zstd"}, {"X-Answer": "sse"}, {"X-Force-Encoding": "gzip"},
        {"Last-Event-ID": "ev-0"}, {"Mcp-Method": "ping"},
    ]))
    headers.update(extra)
    raw = b"" if body is None else json.dumps(body).encode()
    if body is not None and coding:
        if coding == "x-bogus":
            raw = b"\x1f\x8b" + raw
        elif coding != "identity":
            for c in coding.split(","):
                raw = compress(raw, c.strip())
        headers["Content-Encoding"] = coding
    return {"verb": verb, "raw": raw if body is not None else None, "headers": headers}


def _ran(executed: list[tuple[str, dict[str, Any]]]) -> Counter[tuple[str, str]]:
    return Counter((m["method"], json.dumps(m.get("id"))) for _v, m in executed)


def _count(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    allowed = [e for e in events if e.get("rpc_method") and e["decision"] == "allow"]
    return Counter((e["rpc_method"], json.dumps(e.get("rpc_id"))) for e in allowed)


def _identity(headers: dict[str, str]) -> Identity:
    return Identity(headers.get("X-MCP-Human-ID", ""), headers.get("X-MCP-Agent-ID", ""),
                    headers.get("X-MCP-Team-ID", ""))


def _target(msg: dict[str, Any]) -> str:
    params = msg.get("params")
    key = "uri" if msg["method"] == "resources/read" else "name"
    value = params.get(key) if isinstance(params, dict) else None
    return value if isinstance(value, str) else ""


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(req=requests())
def test_no_denied_call_reaches_the_upstream_and_each_forwarded_call_is_audited_once(
    rig: Rig, policy: CompiledPolicy, req: dict[str, Any]
) -> None:
    n, a = len(rig.upstream.seen), len(rig.audit())
    r = httpx2.request(req["verb"], rig.url, content=req["raw"], headers=req["headers"], timeout=30)
    assert r.status_code < 500 or r.status_code == 502, r.text  # never an unhandled error
    executed = rig.upstream.seen[n:]
    # A streamed (SSE) answer is audited when the stream ends, which the client may see a moment
    # before the handler returns; a buffered answer is audited before its bytes are sent.
    deadline = time.monotonic() + 5
    events = rig.audit()[a:]
    while _count(events) != _ran(executed) and time.monotonic() < deadline:
        time.sleep(0.02)
        events = rig.audit()[a:]
    ident = _identity(req["headers"])
    for verb, msg in executed:
        # What reached the upstream came by a verb that carries JSON-RPC, and the policy allows it.
        assert verb in ("POST", "PUT", "PATCH"), (verb, msg)
        d = policy.authorize(AuthzRequest(ident, msg["method"], _target(msg)), 0.0)
        assert d.allowed, (msg, d.reason)
    # Exactly one allowing audit event per executed call (ids compared as JSON, duplicates counted).
    ran, audited = _ran(executed), _count(events)
    assert ran == audited, (ran, audited, r.status_code, r.text[:300])
    # Refusals are audited too: a request the gateway answered itself left at least one event.
    if not executed and r.status_code in (400, 401, 403, 413, 415):
        assert events, (req["verb"], r.status_code, r.text[:300])


def test_the_property_run_was_not_vacuous(rig: Rig) -> None:
    # Runs after the property in this module: calls were forwarded, and refused, along the way.
    events = rig.audit()
    assert len(rig.upstream.seen) >= 10
    assert sum(e["decision"] == "allow" for e in events) >= 10
    assert sum(e["decision"] == "deny" for e in events) >= 10
