"""Kafka record → HTTP binary-mode CloudEvent, the way Knative KafkaSource does it.

Records already in the CloudEvents Kafka binary binding are forwarded unchanged (ce_* headers
become ce-* headers, the value is the body). Other records are wrapped: `type`
`dev.knative.kafka.event`, `source` `/apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>`,
`id` `partition:<p>/offset:<o>`, `subject` `partition:<p>#<o>`, `key` extension. Both get the
Kafka metadata extensions `kafkatopic`, `kafkapartition`, `kafkaoffset`. `to_structured` gives
the same event as one element of a structured-mode batch (the local `batch` delivery mode).
"""

from __future__ import annotations

import base64
import json
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


def _attributes(record: Record | Any, source_name: str, source_namespace: str) -> tuple[
    dict[str, str], str | None, list[tuple[str, str]]
]:
    """The record's CloudEvent attributes (unencoded, Kafka extensions included), its content
    type and its decoded headers: what both delivery shapes are built from."""
    attrs: dict[str, str] = {}
    raw = [(k, (v or b"").decode("utf-8", errors="replace")) for k, v in record.headers or ()]
    if any(k.lower() == "ce_specversion" for k, _ in raw):
        for k, v in raw:
            lk = k.lower()
            if lk.startswith("ce_"):
                attrs[lk[3:]] = v
    else:
        ts = datetime.fromtimestamp(record.timestamp / 1000, UTC) if record.timestamp and record.timestamp > 0 \
            else datetime.now(UTC)
        attrs.update({
            "specversion": "1.0",
            "id": f"partition:{record.partition}/offset:{record.offset}",
            "type": "dev.knative.kafka.event",
            "source": f"/apis/v1/namespaces/{source_namespace}/kafkasources/{source_name}#{record.topic}",
            "subject": f"partition:{record.partition}#{record.offset}",
            "time": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        })
        if record.key is not None:
            attrs["key"] = record.key.decode("utf-8", errors="replace")
    attrs["kafkatopic"] = record.topic
    attrs["kafkapartition"] = str(record.partition)
    attrs["kafkaoffset"] = str(record.offset)
    content_type: str | None = None
    for k, v in raw:
        if k.lower() == "content-type":
            content_type = v
    return attrs, content_type, raw


def to_http(record: Record | Any, *, source_name: str, source_namespace: str) -> tuple[dict[str, str], bytes]:
    """HTTP binary-mode headers and body for one record."""
    attrs, content_type, raw = _attributes(record, source_name, source_namespace)
    headers = {"ce-" + k: _enc(v) for k, v in attrs.items()}
    if content_type is not None:
        headers["content-type"] = content_type
    for k, v in raw:
        if k.lower() in TRACE_HEADERS:
            headers[k.lower()] = v
    return headers, record.value or b""


_JSON_CT = ("application/json", "text/json")


def _is_json_type(content_type: str | None) -> bool:
    if not content_type:
        return True  # CloudEvents default for `data` without datacontenttype is JSON
    ct = content_type.split(";")[0].strip().lower()
    return ct in _JSON_CT or ct.endswith("+json")


def to_structured(record: Record | Any, *, source_name: str, source_namespace: str) -> bytes:
    """One element of an `application/cloudevents-batch+json` body for a record (JSON bytes).

    The same attributes as `to_http` (unencoded: structured mode has no header escaping). A JSON
    value is spliced in as `data` without re-serialising it; anything else goes as `data_base64`.
    """
    attrs, content_type, raw = _attributes(record, source_name, source_namespace)
    for k, v in raw:
        # Only the W3C trace context is a CloudEvents attribute (distributed tracing extension).
        if k.lower() in ("traceparent", "tracestate"):
            attrs.setdefault(k.lower(), v)
    if content_type:
        attrs["datacontenttype"] = content_type
    head = json.dumps(attrs, separators=(",", ":"), ensure_ascii=False).encode()
    value = record.value
    if not value:
        return head
    if _is_json_type(content_type):
        try:
            json.loads(value.decode("utf-8"))  # bytes would also accept UTF-16/32
        except (UnicodeDecodeError, ValueError):
            pass
        else:
            return head[:-1] + b',"data":' + value + b"}"
    return head[:-1] + b',"data_base64":"' + base64.b64encode(value) + b'"}'
