"""Envelope validation and the CloudEvents mapping (pure; round trips through the real SDK)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat

from mcp_sentinel.cloudevents_binary import from_kafka_binary, to_http_binary, to_kafka_binary
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, decode_http, encode_batch, to_structured
from mcp_sentinel.envelope import EnvelopeError, derive_id, envelope_from_dict, new_envelope

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = f"00-{TRACE}-00f067aa0ba902b7-01"


def env(**payload: object):
    return new_envelope("mcp-gateway", "mcp.request", {"namespace": "ns1", "server": "srv", **payload}, trace_id=TRACE)


def fields(exc: pytest.ExceptionInfo[EnvelopeError]) -> dict[str, str]:
    return {e.field: e.reason for e in exc.value.errors}


def test_plain_envelope_every_bad_field_reported_at_once():
    with pytest.raises(EnvelopeError) as exc:
        envelope_from_dict({"source": " ", "event_type": 5, "timestamp": "yesterday", "trace_id": "xyz",
                            "payload": [1], "sorce": "typo", "id": 7})
    assert fields(exc) == {
        "source": "must not be blank",
        "event_type": "must be a string",
        "timestamp": "invalid RFC 3339 date-time (not an RFC 3339 date-time)",
        "trace_id": "must be 32 hex digits (W3C trace id), not all zero",
        "payload": "must be a JSON object, not an array",
        "sorce": "unknown field",
        "id": "must be a string",
    }


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        ({"event_type": "t", "payload": {}}, "source", "required"),
        ({"source": "s", "payload": {}}, "event_type", "required"),
        ({"source": "s", "event_type": "t"}, "payload", "required"),
        ({"source": "s", "event_type": "t", "payload": None}, "payload", "required"),
        ({"source": "s", "event_type": "t", "payload": "x"}, "payload", "must be a JSON object, not a string"),
        ({"source": "s" * 257, "event_type": "t", "payload": {}}, "source", "longer than 256 characters"),
        ({"source": "a\nb", "event_type": "t", "payload": {}}, "source", "contains control characters"),
        ({"source": "s", "event_type": "t", "payload": {}, "timestamp": "2026-05-04T18:00:00"}, "timestamp",
         "invalid RFC 3339 date-time (timestamp has no UTC offset)"),
        ({"source": "s", "event_type": "t", "payload": {}, "timestamp": 5}, "timestamp", "must be an RFC 3339 string"),
        ({"source": "s", "event_type": "t", "payload": {}, "trace_id": "0" * 32}, "trace_id",
         "must be 32 hex digits (W3C trace id), not all zero"),
    ],
)
def test_plain_envelope_single_errors(doc, field, reason):
    with pytest.raises(EnvelopeError) as exc:
        envelope_from_dict(doc)
    assert fields(exc) == {field: reason}


def test_not_an_object():
    with pytest.raises(EnvelopeError) as exc:
        envelope_from_dict([])
    assert fields(exc) == {"$": "must be a JSON object, not an array"}


def test_plain_envelope_normalises_and_derives_stable_id():
    doc = {"source": " mcp-gateway ", "event_type": "mcp.request ", "timestamp": "2026-05-04T20:00:00.123456789+02:00",
           "payload": {"b": 1, "a": 2}, "trace_id": TRACE.upper()}
    e1, e2 = envelope_from_dict(doc), envelope_from_dict(json.loads(json.dumps(doc)))
    assert e1.source == "mcp-gateway" and e1.event_type == "mcp.request"
    assert e1.timestamp == datetime(2026, 5, 4, 18, 0, 0, 123456, tzinfo=UTC)
    assert e1.trace_id == TRACE
    assert e1.id == e2.id == derive_id("mcp-gateway", "mcp.request", doc["timestamp"], {"a": 2, "b": 1})
    other = envelope_from_dict({**doc, "payload": {"a": 2, "b": 2}})
    assert other.id != e1.id


def test_missing_timestamp_filled_with_now_and_random_id():
    before = datetime.now(UTC)
    a = envelope_from_dict({"source": "s", "event_type": "t", "payload": {}})
    b = envelope_from_dict({"source": "s", "event_type": "t", "payload": {}})
    assert a.timestamp >= before and a.id != b.id


def test_partition_key():
    assert env().partition_key == "ns1/srv"
    assert new_envelope("src", "t", {"x": 1}).partition_key == "src"


def test_structured_batch_round_trip():
    events = [env(i=i) for i in range(3)]
    decoded = decode_http({"Content-Type": BATCH_CONTENT_TYPE}, encode_batch([(events[0], TP), events[1], events[2]]))
    assert decoded.mode == "batch"
    assert [d.envelope for d in decoded.events] == events
    assert decoded.events[0].traceparent == TP


def test_structured_mode_read_by_sdk_and_back():
    e = env()
    body = json.dumps(to_structured(e, traceparent=TP)).encode()
    sdk_event = sdk_http.from_structured(sdk_http.HTTPMessage({"content-type": "application/cloudevents+json"}, body),
                                         JSONFormat())
    assert sdk_event.get_id() == e.id and sdk_event.get_type() == "mcp.request"
    assert sdk_event.get_extension("traceparent") == TP
    assert sdk_event.get_data() == dict(e.payload)
    again = decode_http({"content-type": "application/cloudevents+json; charset=utf-8"}, body)
    assert again.mode == "structured" and again.events[0].envelope == e


def test_http_binary_round_trip_via_sdk():
    e = env()
    headers, body = to_http_binary(e, traceparent=TP)
    assert headers["ce-type"] == "mcp.request" and headers["content-type"] == "application/json"
    sdk_event = sdk_http.from_binary(sdk_http.HTTPMessage(headers, body), JSONFormat())
    assert sdk_event.get_source() == "mcp-gateway"
    decoded = decode_http(headers, body)
    assert decoded.mode == "binary" and decoded.events[0].envelope == e


def test_kafka_binary_round_trip_via_sdk():
    e = env()
    rec = to_kafka_binary(e, traceparent=TP, baggage="k=v")
    assert rec.key == b"ns1/srv"
    h = dict(rec.headers)
    assert h["ce_id"] == e.id.encode() and h["ce_traceparent"] == TP.encode() and h["traceparent"] == TP.encode()
    assert h["baggage"] == b"k=v" and h["content-type"] == b"application/json"
    sdk_event = sdk_kafka.from_binary(sdk_kafka.KafkaMessage(h, rec.key, rec.value), JSONFormat())
    assert sdk_event.get_data() == dict(e.payload)
    assert from_kafka_binary(rec.headers, rec.value).envelope == e


def test_batch_errors_name_every_bad_element_and_attribute():
    good = to_structured(env())
    bad = {"specversion": "0.3", "type": "", "source": "s", "time": "nope", "data": [1], "Bad-Ext": "x"}
    body = json.dumps([good, bad, 5, {**good, "traceparent": "garbage", "datacontenttype": "text/plain"}]).encode()
    with pytest.raises(EnvelopeError) as exc:
        decode_http({"content-type": BATCH_CONTENT_TYPE}, body)
    assert fields(exc) == {
        "[1].specversion": "must be '1.0'",
        "[1].id": "required",
        "[1].Bad-Ext": "invalid extension attribute name (lowercase letters and digits, at most 20)",
        "[1].type": "must not be blank",
        "[1].time": "invalid RFC 3339 date-time (not an RFC 3339 date-time)",
        "[1].data": "must be a JSON object, not an array",
        "[2].$": "a structured CloudEvent must be a JSON object",
        "[3].datacontenttype": "must be application/json",
        "[3].traceparent": "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
    }


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"content-type": BATCH_CONTENT_TYPE}, b"[]", {"$": "batch is empty"}),
        ({"content-type": BATCH_CONTENT_TYPE}, b"{}", {"$": "a CloudEvents batch must be a JSON array"}),
        ({}, b"[1]", {"$": f"send batches as a JSON array with Content-Type {BATCH_CONTENT_TYPE}"}),
        ({"content-type": "text/csv"}, b"a,b", {"content-type": "unsupported content type 'text/csv'"}),
        ({"ce-specversion": "1.0", "ce-source": "s", "ce-type": "t"}, b"", {"id": "required", "data": "required"}),
        ({"ce-specversion": "1.0", "ce-id": " ", "ce-source": "s", "ce-type": "t"}, b"{}", {"id": "must not be blank"}),
    ],
)
def test_request_shape_errors(headers, body, expected):
    with pytest.raises(EnvelopeError) as exc:
        decode_http(headers, body)
    assert fields(exc) == expected


def test_invalid_json_body():
    with pytest.raises(EnvelopeError) as exc:
        decode_http({"content-type": "application/json"}, b"{not json")
    assert list(fields(exc)) == ["$"] and fields(exc)["$"].startswith("body is not valid JSON")


def test_plain_json_with_specversion_is_structured():
    body = json.dumps(to_structured(env())).encode()
    assert decode_http({"content-type": "application/json"}, body).mode == "structured"
