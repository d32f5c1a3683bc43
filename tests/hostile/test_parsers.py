"""Hostile input against every parser on the trust boundary: arbitrary bytes/JSON never crash them.

Each parser must answer arbitrary input with either a valid value or its own precise error type
(`Inspection.error`, `PolicyError`, `EnvelopeError`), never with an unexpected exception.
The evaluator properties (list ⊆ callable, monotonicity, revision stability) live in
tests/policy/test_properties.py; here they are complemented by hostile *documents*.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mcp_sentinel import jsonrpc
from mcp_sentinel.cloudevents_binary import from_kafka_binary
from mcp_sentinel.cloudevents_codec import decode_http
from mcp_sentinel.envelope import Envelope, EnvelopeError, envelope_from_dict
from mcp_sentinel.policy import AuthzRequest, Identity, PolicyError, load_policy, parse_document

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=5),
    max_leaves=25,
)
METHODS = st.sampled_from(["tools/call", "call_tool", "tools/list", "initialize", "ping", "", " ", "x"])
ids = st.none() | st.integers() | st.text(max_size=6) | st.booleans() | st.lists(st.integers(), max_size=1)


@st.composite
def rpc_messages(draw: st.DrawFn) -> dict[str, Any]:
    """Near-valid JSON-RPC objects: the shapes an attacker would mutate."""
    msg: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "1.0", None]))}
    if draw(st.booleans()):
        msg["id"] = draw(ids)
    if draw(st.integers(0, 9)) > 0:
        msg["method"] = draw(METHODS | st.text(max_size=5))
    if draw(st.booleans()):
        msg["params"] = draw(
            st.fixed_dictionaries({"name": st.text(max_size=8) | json_scalars}, optional={"arguments": json_values})
            | json_values
        )
    if draw(st.integers(0, 5)) == 0:
        msg["result"] = draw(json_values)
    return msg


# -- JSON-RPC inspector --------------------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=300))
def test_inspector_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    insp = jsonrpc.inspect_body(body)
    assert insp.ok or (insp.error and insp.error_code in (jsonrpc.PARSE_ERROR, -32600, -32602))
    if insp.ok:
        assert insp.messages


@FAST
@given(json_values)
def test_inspector_never_raises_on_arbitrary_json(doc: Any) -> None:
    insp = jsonrpc.inspect_body(json.dumps(doc).encode())
    if not insp.ok:
        assert insp.error and insp.error_code < 0
        return
    # Accepted bodies are exactly objects or non-empty arrays of objects.
    assert isinstance(doc, dict) or (isinstance(doc, list) and doc and all(isinstance(m, dict) for m in doc))


@FAST
@given(st.lists(rpc_messages(), min_size=1, max_size=6))
def test_every_tool_call_in_a_batch_is_reported(batch: list[dict[str, Any]]) -> None:
    insp = jsonrpc.inspect_body(json.dumps(batch).encode())
    calls = [m for m in batch if m.get("method") in ("tools/call", "call_tool")]
    if not insp.ok:
        # Rejected as a whole: nothing can be forwarded, so nothing can escape governance.
        assert insp.error
        return
    assert insp.batch and len(insp.messages) == len(batch)
    reported = [(m.method, m.tool_name) for m in insp.tool_calls]
    assert reported == [(c["method"], c["params"]["name"]) for c in calls]
    assert all(name for _m, name in reported)  # a tools/call without a usable name never passes inspection


@FAST
@given(rpc_messages(), st.none() | METHODS, st.none() | st.text(max_size=8))
def test_header_mismatch_never_lets_headers_disagree_with_the_body(
    msg: dict[str, Any], h_method: str | None, h_name: str | None
) -> None:
    insp = jsonrpc.inspect_body(json.dumps(msg).encode())
    assume(insp.ok)
    why = jsonrpc.header_mismatch(insp, h_method, h_name)
    body = insp.messages[0]
    if why:
        return
    # Accepted: every header present agrees with the body (the body stays the source of truth).
    if h_method is not None:
        assert h_method.strip() == body.method
    if h_name is not None and body.is_tool_call:
        assert jsonrpc.decode_header_value(h_name) == body.tool_name


def _sentinel(value: str) -> str:
    return "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


@FAST
@given(st.text(max_size=40), st.text(max_size=40))
def test_base64_mcp_name_agrees_exactly_when_the_decoded_name_is_the_body_name(name: str, other: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name}}
    insp = jsonrpc.inspect_body(json.dumps(body).encode())
    assume(insp.ok)
    assert not jsonrpc.header_mismatch(insp, "tools/call", _sentinel(name))
    assert bool(jsonrpc.header_mismatch(insp, "tools/call", _sentinel(other))) == (other != name)


def _dumps_with_duplicate(value: Any, target: int, extra: Any, counter: list[int]) -> str:
    """JSON text of `value` where the `target`-th non-empty object (walk order) repeats its first key."""
    if isinstance(value, dict):
        parts = [f"{json.dumps(k)}:{_dumps_with_duplicate(v, target, extra, counter)}" for k, v in value.items()]
        if value:
            if counter[0] == target:
                parts.append(f"{json.dumps(next(iter(value)))}:{json.dumps(extra)}")
            counter[0] += 1
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps_with_duplicate(v, target, extra, counter) for v in value) + "]"
    return json.dumps(value)


def _objects(value: Any) -> int:
    if isinstance(value, dict):
        return (1 if value else 0) + sum(_objects(v) for v in value.values())
    if isinstance(value, list):
        return sum(_objects(v) for v in value)
    return 0


@FAST
@given(rpc_messages() | json_values, st.integers(0, 50), json_scalars)
def test_a_repeated_key_at_any_depth_is_refused(doc: Any, pick: int, extra: Any) -> None:
    """Duplicate keys are a parser differential (the gateway keeps the last, an upstream may keep the
    first): whatever object repeats a key, the body is refused before anything is decided."""
    n = _objects(doc)
    assume(n > 0)
    text = _dumps_with_duplicate(doc, pick % n, extra, [0])
    json.loads(text)  # a last-wins parser accepts it
    insp = jsonrpc.inspect_body(text.encode())
    assert insp.error and "duplicate key" in insp.error and insp.error_code == jsonrpc.PARSE_ERROR
    assert insp.messages == []


@FAST
@given(rpc_messages() | json_values)
def test_bodies_without_repeated_keys_parse_as_before(doc: Any) -> None:
    raw = json.dumps(doc).encode()
    assert jsonrpc.loads_unique(raw) == json.loads(raw)


def _case_variants(key: str) -> st.SearchStrategy[str]:
    swaps = {"s": ["s", "S", "\u017f"], "k": ["k", "K", "\u212a"]}
    letters = [st.sampled_from(swaps.get(c, [c, c.upper()])) for c in key]
    return st.tuples(*letters).map("".join).filter(lambda v: v != key)


@FAST
@given(st.data(), rpc_messages())
def test_a_protocol_key_in_another_case_is_refused(data: st.DataObject, msg: dict[str, Any]) -> None:
    """Go decoders match struct keys case-insensitively (`METHOD` is `method` to a Go MCP server): any
    spelling of an envelope or params key other than the exact one is refused, alone or beside it."""
    envelope = data.draw(st.booleans())
    key = data.draw(st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error"] if envelope
                                    else ["name", "uri", "arguments", "_meta", "cursor"]))  # fmt: skip
    variant = data.draw(_case_variants(key))
    value = data.draw(json_values)
    if envelope:
        msg[variant] = value
    else:
        params = msg["params"] = msg["params"] if isinstance(msg.get("params"), dict) else {}
        params[variant] = value
    insp = jsonrpc.inspect_body(json.dumps(msg).encode())
    assert insp.error and insp.messages == [], (msg, insp)


def test_argument_keys_keep_their_case() -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "s", "arguments": {"Name": 1}}}
    assert jsonrpc.inspect_body(json.dumps(body).encode()).ok


def test_header_value_decoding() -> None:
    decode = jsonrpc.decode_header_value
    assert decode("list_documents") == "list_documents"
    assert decode("=?base64?SGVsbG8sIOS4lueVjA==?=") == "Hello, 世界"
    assert decode(_sentinel(" padded ")) == " padded "
    assert decode(_sentinel("=?base64?x?=")) == "=?base64?x?="  # a literal that looks like the form
    assert decode("=?base64??=") == ""
    assert decode("=?base64?SGVsbG8sIOS4lueVjB==?=") is None  # non-canonical padding bits
    assert decode("=?base64?%%%?=") is None
    assert decode("=?base64?SGVsbG8?=") is None  # missing padding: not canonical
    assert decode(_sentinel("x")[:-2]) == _sentinel("x")[:-2]  # no suffix: a plain value, compared as is
    assert decode("=?base64?" + base64.b64encode(b"\xff\xfe").decode() + "?=") is None  # not UTF-8


def test_encoded_mcp_name_for_a_unicode_tool_and_forgeries() -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "héllo"}}
    insp = jsonrpc.inspect_body(json.dumps(body).encode())
    assert not jsonrpc.header_mismatch(insp, "tools/call", "=?base64?aMOpbGxv?=")
    assert jsonrpc.header_mismatch(insp, "tools/call", _sentinel("hello"))
    assert "not valid" in jsonrpc.header_mismatch(insp, "tools/call", "=?base64?aMOpbGxv=?=")


def test_forged_mcp_name_on_a_destructive_call_is_a_mismatch() -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "rm_rf"}}
    insp = jsonrpc.inspect_body(json.dumps(body).encode())
    assert jsonrpc.header_mismatch(insp, "tools/call", "harmless_tool")
    assert jsonrpc.header_mismatch(insp, "tools/list", None)
    assert jsonrpc.header_mismatch(insp, "tools/call", None)  # Mcp-Name required with Mcp-Method
    assert not jsonrpc.header_mismatch(insp, "tools/call", "rm_rf")


def test_deep_nesting_is_rejected_not_crashing() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    insp = jsonrpc.inspect_body(deep)
    assert not insp.ok and insp.error
    nested_params = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":' + (
        b"[" * 50_000 + b"]" * 50_000 + b"}}"
    )
    insp = jsonrpc.inspect_body(nested_params)
    assert not insp.ok and insp.error


def test_deep_nesting_in_policy_and_events_is_a_precise_error() -> None:
    deep = b'{"payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    try:
        load_policy(deep)
    except PolicyError as exc:
        assert str(exc)
    for headers in ({"content-type": "application/json"}, {"content-type": "application/cloudevents-batch+json"}):
        try:
            decode_http(headers, deep)
        except EnvelopeError as exc:
            assert exc.errors


# -- Policy documents ----------------------------------------------------------------------------------------

policy_like = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": st.sampled_from(["v1", "v2", ""]) | json_scalars,
        "revision": st.text(max_size=10) | json_scalars,
        "server": st.dictionaries(st.sampled_from(["name", "namespace", "team_id"]), json_scalars) | json_values,
        "auth": st.dictionaries(st.sampled_from(["mode", "issuer_url", "audience"]), json_scalars) | json_values,
        "policy": st.dictionaries(st.sampled_from(["mode", "default_decision"]), json_scalars) | json_values,
        "tools": st.lists(
            st.dictionaries(st.sampled_from(["name", "side_effect", "required_trust"]), json_scalars), max_size=3
        )
        | json_values,
        "grants": st.lists(
            st.dictionaries(
                st.sampled_from(["name", "human_id", "max_trust", "allowed_side_effects", "tool_rules", "disabled"]),
                json_values,
            ),
            max_size=3,
        )
        | json_values,
        "sessions": st.lists(st.dictionaries(st.sampled_from(["name", "human_id", "expires_at"]), json_values))
        | json_values,
    },
)


@FAST
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_policy_parser_raises_only_policy_error(raw: bytes) -> None:
    try:
        parse_document(raw)
        load_policy(raw)
    except PolicyError as exc:
        assert str(exc)


@FAST
@given(policy_like, st.text(max_size=6), st.text(max_size=6))
def test_hostile_policy_documents_load_or_fail_closed(doc: dict[str, Any], human: str, tool: str) -> None:
    try:
        policy = load_policy(json.dumps(doc))
    except PolicyError as exc:
        assert str(exc)
        return
    who = Identity(human_id=human)
    d = policy.authorize(AuthzRequest(who, "tools/call", tool), time.time())
    assert d.allowed in (True, False) and d.reason
    assert policy.tool_visible(who, tool, time.time()) == d.allowed


# -- Envelopes and CloudEvents -------------------------------------------------------------------------------

envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_scalars,
        "source": st.text(max_size=10) | json_scalars,
        "event_type": st.text(max_size=10) | json_scalars,
        "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "yesterday", ""])
        | json_scalars,
        "trace_id": st.sampled_from(["0" * 32, "a" * 32, "xyz"]) | json_scalars,
        "payload": json_values,
        "extra": json_values,
    },
)


def _assert_envelope_or_error(fn: Any, *args: Any) -> None:
    try:
        out = fn(*args)
    except EnvelopeError as exc:
        # An unknown key may itself be empty (`{"": 1}`), so only the reason must be non-empty.
        assert exc.errors and all(isinstance(e.field, str) and e.reason for e in exc.errors)
        return
    envs = [out] if isinstance(out, Envelope) else [e.envelope for e in getattr(out, "events", [out])]
    for env in envs:
        env = getattr(env, "envelope", env)
        assert isinstance(env, Envelope) and env.id and env.source and isinstance(env.payload, dict)


@FAST
@given(envelope_like | json_values)
def test_plain_envelope_is_valid_or_precise_error(obj: Any) -> None:
    _assert_envelope_or_error(envelope_from_dict, obj)


ce_headers = st.dictionaries(
    st.sampled_from(
        ["content-type", "ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time", "ce-traceparent", "ce-x"]
    ),
    st.sampled_from(["1.0", "application/json", "application/cloudevents+json", "application/cloudevents-batch+json"])
    | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
)


@FAST
@given(ce_headers, st.binary(max_size=120) | (envelope_like | json_values).map(lambda v: json.dumps(v).encode()))
def test_cloudevents_http_is_valid_or_precise_error(headers: dict[str, str], body: bytes) -> None:
    _assert_envelope_or_error(decode_http, headers, body)


@FAST
@given(
    st.lists(st.tuples(st.sampled_from(["ce_id", "ce_source", "ce_type", "ce_specversion", "content-type", "x"]),
                       st.none() | st.binary(max_size=12))),
    st.none() | st.binary(max_size=80),
)
def test_cloudevents_kafka_record_is_valid_or_precise_error(
    headers: list[tuple[str, bytes | None]], value: bytes | None
) -> None:
    _assert_envelope_or_error(from_kafka_binary, headers, value)
