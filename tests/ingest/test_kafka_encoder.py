"""The hand-written Kafka binary encoder (ingest's hot path) equals the cloudevents SDK byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sentinel.cloudevents_binary import from_kafka_binary, to_kafka_binary, to_kafka_binary_sdk
from mcp_sentinel.envelope import Envelope

_text = st.text(alphabet=st.characters(min_codepoint=0x20, blacklist_characters="\x7f", blacklist_categories=("Cs",)),
                min_size=1, max_size=40).filter(lambda s: s.strip() == s and s != "")
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_hex32 = st.from_regex(r"\A[0-9a-f]{32}\Z").filter(lambda s: s != "0" * 32)
_tp = st.builds(lambda t, s, f: f"00-{t}-{s}-{f}", _hex32,
                st.from_regex(r"\A[0-9a-f]{16}\Z").filter(lambda s: s != "0" * 16), st.sampled_from(["00", "01"]))
_when = st.builds(lambda us: datetime(2020, 1, 1, tzinfo=UTC) + timedelta(microseconds=us),
                  st.integers(0, 10**15) | st.just(0) | st.integers(0, 10**6).map(lambda s: s * 10**6))


@settings(max_examples=300, deadline=None)
@given(
    eid=_text, source=_text, etype=_text, when=_when, trace=st.just("") | _hex32,
    payload=st.dictionaries(st.sampled_from(["namespace", "server", "x", "é☃", "n"]) | st.text(max_size=6), _json,
                            max_size=6),
    traceparent=st.none() | _tp, tracestate=st.none() | st.just("vendor=a,other=b"),
    baggage=st.none() | st.just("k=v"),
)
def test_fast_encoder_equals_sdk(eid, source, etype, when, trace, payload, traceparent, tracestate, baggage):
    env = Envelope(eid, when, trace, source, etype, payload)
    kw = {"traceparent": traceparent, "tracestate": tracestate, "baggage": baggage}
    fast, sdk = to_kafka_binary(env, **kw), to_kafka_binary_sdk(env, **kw)
    assert fast == sdk


def test_whole_second_timestamp_and_synthetic_traceparent_round_trip():
    # isoformat() drops a zero fraction; the decoder must still read the record back unchanged.
    env = Envelope("e1", datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "4bf92f3577b34da6a3ce929d0e0e4736",
                   "gw", "mcp.request", {"namespace": "ns", "server": "s"})
    rec = to_kafka_binary(env)
    assert dict(rec.headers)["ce_time"] == b"2024-05-01T12:00:00Z"
    assert rec == to_kafka_binary_sdk(env)
    assert from_kafka_binary(rec.headers, rec.value).envelope == env
