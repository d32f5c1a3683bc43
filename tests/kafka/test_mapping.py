"""Kafka record → CloudEvent as Knative KafkaSource maps it, in both delivery shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import unquote

from localstack.kafka_source.mapping import to_http, to_structured

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Rec:
    topic: str = "mcp.events"
    partition: int = 2
    offset: int = 7
    timestamp: int = 1764000000123
    key: bytes | None = b"server a"
    value: bytes | None = b'{"x": 1}'
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


def shapes(rec: Rec) -> tuple[dict[str, str], dict[str, object]]:
    headers, body = to_http(rec, source_name="src", source_namespace="ns")
    assert body == (rec.value or b"")
    return headers, json.loads(to_structured(rec, source_name="src", source_namespace="ns"))


def test_plain_record_is_wrapped_like_knative_in_both_shapes() -> None:
    headers, event = shapes(Rec(headers=[("content-type", b"application/json"), ("traceparent", TP.encode())]))
    expected = {
        "specversion": "1.0",
        "id": "partition:2/offset:7",
        "type": "dev.knative.kafka.event",
        "source": "/apis/v1/namespaces/ns/kafkasources/src#mcp.events",
        "subject": "partition:2#7",
        "time": "2025-11-24T16:00:00.123000Z",
        "key": "server a",
        "kafkatopic": "mcp.events",
        "kafkapartition": "2",
        "kafkaoffset": "7",
    }
    assert {k[3:]: unquote(v) for k, v in headers.items() if k.startswith("ce-")} == expected
    assert headers["ce-key"] == "server%20a"  # HTTP binding: header values are percent-encoded
    assert headers["content-type"] == "application/json" and headers["traceparent"] == TP
    assert event == {**expected, "traceparent": TP, "datacontenttype": "application/json", "data": {"x": 1}}


def test_cloudevent_record_passes_through_with_kafka_extensions() -> None:
    rec = Rec(key=None, value=b"\xff", headers=[
        ("ce_specversion", b"1.0"), ("ce_id", b"e 1"), ("ce_source", b"gw"), ("ce_type", b"mcp.request"),
        ("Content-Type", b"application/octet-stream"), ("tracestate", b"k=v"),
    ])  # fmt: skip
    headers, event = shapes(rec)
    assert headers == {
        "ce-specversion": "1.0", "ce-id": "e%201", "ce-source": "gw", "ce-type": "mcp.request",
        "ce-kafkatopic": "mcp.events", "ce-kafkapartition": "2", "ce-kafkaoffset": "7",
        "content-type": "application/octet-stream", "tracestate": "k=v",
    }  # fmt: skip
    assert event == {
        "specversion": "1.0", "id": "e 1", "source": "gw", "type": "mcp.request", "kafkatopic": "mcp.events",
        "kafkapartition": "2", "kafkaoffset": "7", "tracestate": "k=v",
        "datacontenttype": "application/octet-stream", "data_base64": "/w==",
    }  # fmt: skip
