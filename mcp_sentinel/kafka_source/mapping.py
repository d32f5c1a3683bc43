"""Kafka record → HTTP binary-mode CloudEvent, the way Knative KafkaSource does it.

Records already in the CloudEvents Kafka binary binding are forwarded unchanged (ce_* headers
become ce-* headers, the value is the body). Other records are wrapped: `type`
`dev.knative.kafka.event`, `source` `/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`,
`id` `partition:<p>/offset:<o>`, `subject` `partition:<p>#<o>`, `key` extension. Both get the
Kafka metadata extensions `kafkatopic`, `kafkapartition`, `kafkaoffset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from mcp_sentinel.cloudevents_codec import TRACE_HEADERS


class Record(Protocol):
    """The fields of a kafka-python ConsumerRecord this module reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


def _enc(value: str) -> str:
    # HTTP binding: header values are percent-encoded (space, quote, percent, non-ASCII...).
    return quote(value, safe="/:;=@+-_.~!$&'()*,#")


def to_http(record: Record | Any, *, source_name: str, source_namespace: str) -> tuple[dict[str, str], bytes]:
    """HTTP binary-mode headers and body for one record."""
    headers: dict[str, str] = {}
    raw = [(k, (v or b"").decode("utf-8", errors="replace")) for k, v in record.headers or ()]
    is_ce = any(k.lower() == "ce_specversion" for k, _ in raw)
    if is_ce:
        for k, v in raw:
            lk = k.lower()
            if lk.startswith("ce_"):
                headers["ce-" + lk[3:]] = _enc(v)
            elif lk == "content-type":
                headers["content-type"] = v
    else:
        ts = datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp and record.timestamp > 0 \
            else datetime.now(UTC)
        headers.update({
            "ce-specversion": "1.0",
            "ce-id": f"partition:{record.partition}/offset:{record.offset}",
            "ce-type": "dev.knative.kafka.event",
            "ce-source": _enc(f"/apis/v1/namespaces/{source_namespace}/kafkasources/{source_name}#{record.topic}"),
            "ce-subject": _enc(f"partition:{record.partition}#{record.offset}"),
            "ce-time": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        })
        if record.key is not None:
            headers["ce-key"] = _enc(record.key.decode("utf-8", errors="replace"))
        for k, v in raw:
            if k.lower() == "content-type":
                headers["content-type"] = v
    headers["ce-kafkatopic"] = _enc(record.topic)
    headers["ce-kafkapartition"] = str(record.partition)
    headers["ce-kafkaoffset"] = str(record.offset)
    for k, v in raw:
        if k.lower() in TRACE_HEADERS:
            headers[k.lower()] = v
    return headers, record.value or b""
