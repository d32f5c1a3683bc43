"""`payload_text` (orjson with guards) writes exactly the stdlib's compact JSON for every payload."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sentinel.storage.events import _stdlib_text, payload_text

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8)
    | st.sampled_from([1e-5, 1e-7, 5e-5, 1e16, 1e-10, -0.0, 2**64, -(2**63) - 1, "\ud800", "\x7f\u2028", "e-0.0000"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)  # fmt: skip


def reference(payload: dict[str, Any]) -> str:
    """What the processor stored before orjson (the stdlib encoder, lone surrogates escaped)."""
    text = _COMPACT.encode(payload)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = json.dumps(payload, separators=(",", ":"))
    return text


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.text(max_size=6), values, max_size=5))
def test_payload_text_equals_the_stdlib_encoding(payload: dict[str, Any]) -> None:
    assert payload_text(payload) == reference(payload) == _stdlib_text(payload)


def test_each_orjson_difference_is_caught() -> None:
    for value, stdlib in ((1e-05, "1e-05"), (2.5e-06, "2.5e-06"), (float("nan"), "NaN"), (float("inf"), "Infinity"),
                          (2**64, str(2**64)), (-(2**63) - 1, str(-(2**63) - 1))):  # fmt: skip
        assert payload_text({"v": value}) == '{"v":' + stdlib + "}"


def test_typical_payload_is_compact_and_keeps_non_ascii() -> None:
    text = payload_text({"server": "sérvér", "n": 3, "ok": True, "l": [1.5]})
    assert text == '{"server":"sérvér","n":3,"ok":true,"l":[1.5]}'
