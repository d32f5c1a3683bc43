"""The batch-decoding fast path agrees with the full validation on every input.

`_fast_structured` may only decline (None) or return exactly what `_structured` returns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_sentinel.cloudevents_codec import (
    BATCH_CONTENT_TYPE,
    EventFields,
    _fast_structured,
    _structured,
    decode_http,
    decode_http_fields,
    to_structured,
)
from mcp_sentinel.envelope import EnvelopeError, new_envelope

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)
# Attribute values near the edges of every rule: blank, padded, control characters, too long,
# wrong types, bad times and traceparents, odd content types.
texts = st.sampled_from(["x", " padded ", "", "   ", "a\nb", "é", "s" * 256, "s" * 257, "\x7f"]) | st.text(max_size=6)
attr_values: dict[str, st.SearchStrategy[Any]] = {
    "specversion": st.sampled_from(["1.0", "0.3", 1.0, None]),
    "id": texts | st.integers(),
    "source": texts | st.integers(),
    "type": texts | st.none(),
    "time": st.sampled_from(["2026-05-04T18:00:00Z", "2026-05-04T18:00:00.123456789+02:00", " 2026-05-04t18:00:00z ",
                             "2026-05-04T18:00:00", "yesterday", "", " ", 5]),
    "datacontenttype": st.sampled_from(["application/json", "text/json; charset=utf-8", "application/x+json",
                                        "APPLICATION/JSON", "text/plain", 3]),
    "traceparent": st.sampled_from([TP, TP.upper(), f" {TP} ", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "bad", 7]),
    "tracestate": st.sampled_from(["k=v", "", 4]),
    "subject": st.sampled_from(["s", 1]),
    "dataschema": st.sampled_from(["https://x", None]),
    "data": st.dictionaries(st.text(max_size=4), json_values, max_size=3) | json_values,
    "data_base64": st.just("AAAA"),
    "kafkaoffset": st.sampled_from(["1", 2]),
    "myext1": st.just("v"),
    "Bad_Ext": st.just("v"),
}
valid = {"specversion": "1.0", "id": "e1", "source": "mcp-gateway", "type": "mcp.request",
         "time": "2026-05-04T18:00:00.5Z", "datacontenttype": "application/json", "traceparent": TP,
         "data": {"server": "s", "n": 1}}  # fmt: skip


@st.composite
def elements(draw: st.DrawFn) -> Any:
    obj = dict(valid)
    for name in draw(st.lists(st.sampled_from(sorted(attr_values)), max_size=4, unique=True)):
        obj[name] = draw(attr_values[name])
    for name in draw(st.lists(st.sampled_from(sorted(valid)), max_size=2, unique=True)):
        obj.pop(name, None)
    return obj


def _slow(obj: Any) -> Any:
    try:
        return _structured(obj)
    except EnvelopeError as exc:
        return exc


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(elements())
def test_fast_path_declines_or_equals_the_full_validation(obj: Any) -> None:
    fast = _fast_structured(obj)
    if fast is not None:
        assert fast == _slow(obj)


def _decoded(headers: dict[str, str], body: bytes, fields: bool) -> Any:
    try:
        if fields:
            return decode_http_fields(headers, body)
        return tuple(EventFields.of(ev) for ev in decode_http(headers, body).events)
    except EnvelopeError as exc:
        return ["errors", *exc.errors]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(elements(), max_size=4), st.sampled_from([BATCH_CONTENT_TYPE, "application/cloudevents+json"]))
def test_fields_equal_decode_http_for_every_batch(items: list[Any], content_type: str) -> None:
    """`decode_http_fields` (the processor's path): the same events, or the same errors, as `decode_http`."""
    headers = {"content-type": content_type}
    sent = items if content_type == BATCH_CONTENT_TYPE else (items or [valid])[:1]
    body = json.dumps(sent if content_type == BATCH_CONTENT_TYPE else sent[0]).encode()
    fast, slow = _decoded(headers, body, True), _decoded(headers, body, False)
    if any(not (isinstance(i.get("time"), str) and i["time"].strip()) for i in sent) and isinstance(fast, tuple):
        # A missing time means "now", read once per decode: equal up to the clock.
        fast, slow = (tuple(f._replace(timestamp=None) for f in x) for x in (fast, slow))
    assert fast == slow


def test_fields_of_an_all_valid_batch_skip_envelopes() -> None:
    """Guard: the common batch takes the fast path (the property above would pass with only the slow one)."""
    env = new_envelope("mcp-gateway", "mcp.request", {"server": "s"}, trace_id=TP[3:35])
    body = json.dumps([to_structured(env, traceparent=TP), valid]).encode()
    got = decode_http_fields({"content-type": BATCH_CONTENT_TYPE}, body)
    assert [f.id for f in got] == [env.id, "e1"] and got[0].traceparent == TP and got[1].payload == valid["data"]
    assert all(_fast_structured(obj) is not None for obj in json.loads(body))


def test_fast_path_takes_the_common_events() -> None:
    """Guard against a fast path that always declines (the property above would still pass)."""
    env = new_envelope("mcp-gateway", "mcp.request", {"server": "s", "namespace": "n"}, trace_id=TP[3:35])
    dispatcher_element = {**to_structured(env), "kafkatopic": "mcp.events", "kafkapartition": "0", "kafkaoffset": "7"}
    for obj in (to_structured(env), to_structured(env, traceparent=TP), dispatcher_element, valid):
        assert _fast_structured(obj) == _structured(obj)
        assert _fast_structured(obj) is not None


@pytest.mark.parametrize(
    "obj",
    [
        {**valid, "id": "  "},
        {**valid, "time": "2026-05-04T18:00:00"},
        {**valid, "data": [1]},
        {**valid, "traceparent": "nope"},
        {**valid, "data_base64": "AA"},
        {k: v for k, v in valid.items() if k != "time"},  # "now" and the derived-id rules stay in one place
    ],
)
def test_fast_path_declines_what_the_full_path_must_word(obj: dict[str, Any]) -> None:
    assert _fast_structured(obj) is None


def test_batch_with_bad_elements_names_each_error_as_before() -> None:
    body = json.dumps([valid, {**valid, "id": "", "time": "x"}, valid, {**valid, "data": "s"}]).encode()
    with pytest.raises(EnvelopeError) as exc:
        decode_http({"content-type": BATCH_CONTENT_TYPE}, body)
    assert {(e.field, e.reason) for e in exc.value.errors} == {
        ("[1].id", "must not be blank"),
        ("[1].time", "invalid RFC 3339 date-time (not an RFC 3339 date-time)"),
        ("[3].data", "must be a JSON object, not a string"),
    }


def test_processor_app_builds_without_fastapi_or_pydantic() -> None:
    """Cold start: the processor is a plain Starlette app (FastAPI's import alone was ~230 ms)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from functions.processor.app import create_app\n"
        "from functions.processor.settings import ProcessorSettings\n"
        "create_app(ProcessorSettings.from_env({'CLICKHOUSE_URL': 'http://127.0.0.1:9'}))\n"
        "print(sorted(m for m in ('fastapi', 'pydantic', 'clickhouse_connect') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
