"""`fast_json.loads` returns what `json.loads` returns (value, types, key order) or raises its error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_sentinel import fast_json
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, decode_http, encode_batch
from mcp_sentinel.envelope import EnvelopeError, new_envelope

_EDGES = st.sampled_from([
    2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, 10**18 - 1, 1e-5, 1e-400, 1e16, 5e-324,
    1.7976931348623157e308, 0.30000000000000004, -0.0, float("nan"), float("inf"), "\ud800", "\x7f\u2028", "é",
])  # fmt: skip
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8) | _EDGES,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)


def outcome(parse: Any, body: bytes) -> tuple[str, str]:
    """The value's repr (types, float bits, key order, bool vs int all show) or the error's type and text."""
    try:
        return "value", repr(parse(body))
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.sampled_from(["compact", "ascii", "indent", "utf-16", "bom"]))
def test_equals_the_stdlib_on_encoded_values(value: Any, style: str) -> None:
    encoders: dict[str, Callable[[Any], str]] = {
        "compact": lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False),
        "ascii": json.dumps,
        "indent": lambda v: json.dumps(v, indent=1, ensure_ascii=False),
        "utf-16": lambda v: json.dumps(v, ensure_ascii=False),
        "bom": lambda v: "\ufeff" + json.dumps(v, ensure_ascii=False),
    }
    text = encoders[style](value)
    body = text.encode("utf-16" if style == "utf-16" else "utf-8", "surrogatepass")
    assert outcome(fast_json.loads, body) == outcome(json.loads, body)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=40) | st.text(alphabet='{}[]",:0123456789.eE+-tnrufalsNIy \\u\x00\t', max_size=30).map(
    lambda s: s.encode()))  # fmt: skip
def test_equals_the_stdlib_on_arbitrary_bytes(body: bytes) -> None:
    assert outcome(fast_json.loads, body) == outcome(json.loads, body)


@pytest.mark.parametrize(
    "body",
    [
        b"123456789012345678901234567890",  # orjson alone: a float
        b'{"n": -9223372036854775809}',
        b"NaN", b"[Infinity]", b"1e400",  # orjson refuses, the stdlib accepts
        b'"\xed\xa0\x80"', b'"\\ud800"',  # surrogates
        b"\xef\xbb\xbf{}",  # UTF-8 BOM
        b'{"a":1,"b":2,"a":3}',  # duplicate key: last value, first position
        b"[" * 5000 + b"]" * 5000,  # deeper than orjson's limit
        b"", b"{", b'"a\x01b"', b"[1,]",
    ],
)  # fmt: skip
def test_each_known_difference_is_settled_by_the_stdlib(body: bytes) -> None:
    assert outcome(fast_json.loads, body) == outcome(json.loads, body)


def test_common_batches_take_orjson() -> None:
    """Guard against a guard that always sends bodies to the stdlib (the properties would still pass)."""
    events = [new_envelope("mcp-gateway", "mcp.request", {"server": "s", "status": 200, "latency_ms": 12,
                                                          "bytes_in": 10**12}) for _ in range(50)]  # fmt: skip
    body = encode_batch(events)
    assert fast_json._LONG_DIGITS.search(body) is None
    assert orjson.loads(body) == json.loads(body)


def test_decode_http_words_bad_bodies_the_same_with_either_parser() -> None:
    for body in (b"{not json", b"[1,]", b"\xff\xfe", b"[" * 5000):
        with pytest.raises(EnvelopeError) as stdlib:
            decode_http({"content-type": BATCH_CONTENT_TYPE}, body)
        with pytest.raises(EnvelopeError) as fast:
            decode_http({"content-type": BATCH_CONTENT_TYPE}, body, loads=fast_json.loads)
        assert fast.value.errors == stdlib.value.errors
