"""CloudEvents binary bindings (Kafka headers, HTTP headers) of the one Envelope mapping in `cloudevents_codec`.

Split from `cloudevents_codec.py`, which keeps the structured and batch forms the sidecar needs
with stdlib-only imports; the cloudevents SDK is imported inside these encoders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp_sentinel.cloudevents_codec import (
    DecodedEvent,
    _loads,
    cloudevent_attributes,
    envelope_from_cloudevent,
    synthetic_traceparent,
)
from mcp_sentinel.envelope import (
    Envelope,
)

if TYPE_CHECKING:
    from cloudevents.core.v1.event import CloudEvent  # lazy: see module docstring



def to_cloudevent(env: Envelope, *, traceparent: str | None = None, tracestate: str | None = None) -> CloudEvent:
    """The SDK `CloudEvent` for an envelope."""
    from cloudevents.core.v1.event import CloudEvent  # lazy: see module docstring

    attrs: dict[str, Any] = dict(cloudevent_attributes(env, traceparent=traceparent, tracestate=tracestate))
    attrs["time"] = env.timestamp
    return CloudEvent(attrs, dict(env.payload))


@dataclass(frozen=True)
class KafkaRecord:
    """A Kafka record in the CloudEvents Kafka binary binding, ready for kafka-python `send()`."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def to_kafka_binary(
    env: Envelope,
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
    baggage: str | None = None,
) -> KafkaRecord:
    """Encode an envelope as a Kafka binary-mode record: key `<namespace>/<server>`, ce_* headers,
    value = the JSON payload; the W3C headers are also set verbatim for OTel propagators.

    This is ingest's hot path, so it writes the binding directly (stdlib only, about 10x cheaper
    than building an SDK `CloudEvent`); `to_kafka_binary_sdk` is the reference it must match byte
    for byte (a test holds them equal).
    """
    # The SDK renders `time` with datetime.isoformat() ("+00:00" → "Z"), which drops the fraction
    # when it is zero; mirror that exactly rather than using the envelope's RFC 3339 form.
    ts = env.timestamp.isoformat()
    if ts.endswith("+00:00"):
        ts = ts[:-6] + "Z"
    if not traceparent and env.trace_id:
        traceparent = synthetic_traceparent(env)
    headers = [
        ("ce_id", env.id.encode()),
        ("ce_source", env.source.encode()),
        ("ce_specversion", b"1.0"),
        ("ce_time", ts.encode()),
    ]
    tp = traceparent.encode() if traceparent else None
    ts_state = tracestate.encode() if tracestate and tp else None
    if tp:
        headers.append(("ce_traceparent", tp))
        if ts_state:
            headers.append(("ce_tracestate", ts_state))
    headers.append(("ce_type", env.event_type.encode()))
    headers.append(("content-type", b"application/json"))
    if tp:
        headers.append(("traceparent", tp))
        if ts_state:
            headers.append(("tracestate", ts_state))
    if baggage:
        headers.append(("baggage", baggage.encode()))
    payload = env.payload if type(env.payload) is dict else dict(env.payload)  # skip a copy on the hot path
    return KafkaRecord(env.partition_key.encode(), json.dumps(payload).encode(), headers)


def to_kafka_binary_sdk(
    env: Envelope,
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
    baggage: str | None = None,
) -> KafkaRecord:
    """The same record as `to_kafka_binary`, built through the cloudevents SDK (the reference)."""
    from cloudevents.core.bindings import kafka as kafka_binding
    from cloudevents.core.formats.json import JSONFormat

    msg = kafka_binding.to_binary(to_cloudevent(env, traceparent=traceparent, tracestate=tracestate), JSONFormat())
    headers = sorted(msg.headers.items())
    extra = {"traceparent": msg.headers.get("ce_traceparent"), "tracestate": msg.headers.get("ce_tracestate")}
    if baggage:
        extra["baggage"] = baggage.encode()
    headers.extend((k, v) for k, v in extra.items() if v)
    return KafkaRecord(env.partition_key.encode(), msg.value, headers)


def kafka_headers_are_cloudevent(headers: Sequence[tuple[str, bytes | None]]) -> bool:
    """True when a record's headers carry the Kafka binary binding (`ce_specversion`)."""
    return any(k.lower() == "ce_specversion" for k, _ in headers)


def from_kafka_binary(headers: Sequence[tuple[str, bytes | None]], value: bytes | None) -> DecodedEvent:
    """Decode a Kafka binary-mode record back to an envelope (errors name CloudEvent attributes)."""
    attrs: dict[str, Any] = {}
    for key, raw in headers:
        lk = key.lower()
        text = (raw or b"").decode("utf-8", errors="replace")
        if lk.startswith("ce_"):
            attrs[lk[3:]] = text
        elif lk == "content-type":
            attrs["datacontenttype"] = text
    has_data = bool(value and value.strip())
    data = _loads(value) if has_data and value is not None else None
    return envelope_from_cloudevent(attrs, data, has_data=has_data)


def to_http_binary(
    env: Envelope, *, traceparent: str | None = None, tracestate: str | None = None
) -> tuple[dict[str, str], bytes]:
    """HTTP binary-mode headers and body for an envelope."""
    from cloudevents.core.bindings import http as http_binding
    from cloudevents.core.formats.json import JSONFormat

    msg = http_binding.to_binary(to_cloudevent(env, traceparent=traceparent, tracestate=tracestate), JSONFormat())
    return dict(msg.headers), msg.body

