"""The one mapping between `Envelope` and CloudEvents 1.0, in every binding the pipeline uses.

| Envelope     | CloudEvent attribute                                  |
|--------------|-------------------------------------------------------|
| `id`         | `id` (producer-generated, stable across redelivery)   |
| `source`     | `source`                                              |
| `event_type` | `type`                                                |
| `timestamp`  | `time`                                                |
| `trace_id`   | the trace-id part of the `traceparent` extension      |
| `payload`    | `data` (`datacontenttype: application/json`)          |

Decoding (HTTP structured, binary and batch; the seed's plain JSON; Kafka binary) is done here,
not by the SDK, so that every bad attribute is reported at once with its name. Encoding to
HTTP binary uses the `cloudevents` SDK (`cloudevents.core`); Kafka binary, ingest's hot path, is
written directly and held byte-equal to the SDK's output (`to_kafka_binary_sdk`) by a test.

Module-level imports are stdlib-only because the sidecar builds its structured batches with
`to_structured()` / `encode_batch()`; the SDK is imported inside the binding encoders.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

from mcp_sentinel.envelope import (
    MAX_EVENT_TYPE_LENGTH,
    MAX_ID_LENGTH,
    MAX_SOURCE_LENGTH,
    Envelope,
    EnvelopeError,
    FieldError,
    envelope_from_dict,
    envelope_from_fields,
    parse_timestamp,
)

if TYPE_CHECKING:
    pass  # lazy: see module docstring

SPECVERSION = "1.0"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
"""W3C trace-context headers copied beside the ce_* headers on Kafka records (processor reads these)."""

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# The form producers write (version 00, lowercase, unpadded): checked without copies on the fast path.
_TRACEPARENT_CANONICAL = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_JSON_CT_RE = re.compile(r"^(application|text)/([a-z0-9.+-]+\+)?json$")
_EXT_NAME_RE = re.compile(r"^[a-z0-9]{1,20}$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")  # the envelope's own rule for id/source/type
_CORE_ATTRS = frozenset({"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject"})

# Envelope field -> CloudEvent attribute, used to rename validation errors.
_CE_NAME = {
    "id": "id",
    "source": "source",
    "event_type": "type",
    "timestamp": "time",
    "trace_id": "traceparent",
    "payload": "data",
}


@dataclass(frozen=True)
class DecodedEvent:
    """One event decoded from a request or record, with the trace context it carried."""

    envelope: Envelope
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass(frozen=True)
class DecodedRequest:
    """What an HTTP request carried: `mode` is `plain`, `structured`, `binary` or `batch`."""

    mode: str
    events: tuple[DecodedEvent, ...]


def traceparent_trace_id(traceparent: str) -> str | None:
    """The trace id inside a valid W3C `traceparent`, else None."""
    m = _TRACEPARENT_RE.fullmatch(traceparent.strip().lower())
    if not m or m.group(1) == "ff" or m.group(2) == "0" * 32 or m.group(3) == "0" * 16:
        return None
    return m.group(2)


def synthetic_traceparent(env: Envelope) -> str:
    """A valid `traceparent` for an envelope that has a trace id but no live span.

    The span id is derived from the event id, so re-encoding the same event is byte-stable.
    """
    span = hashlib.sha256(env.id.encode()).hexdigest()[:16]
    if span == "0" * 16:
        span = "0" * 15 + "1"
    return f"00-{env.trace_id}-{span}-01"


def cloudevent_attributes(
    env: Envelope, *, traceparent: str | None = None, tracestate: str | None = None
) -> dict[str, str]:
    """The CloudEvent context attributes of an envelope (everything but `data`), as strings.

    `traceparent` defaults to a synthetic one when the envelope has a trace id.
    """
    attrs = {
        "specversion": SPECVERSION,
        "id": env.id,
        "source": env.source,
        "type": env.event_type,
        "time": env.timestamp_rfc3339,
        "datacontenttype": JSON_CONTENT_TYPE,
    }
    if traceparent:
        attrs["traceparent"] = traceparent
    elif env.trace_id:
        attrs["traceparent"] = synthetic_traceparent(env)
    if tracestate and "traceparent" in attrs:
        attrs["tracestate"] = tracestate
    return attrs


def to_structured(env: Envelope, *, traceparent: str | None = None, tracestate: str | None = None) -> dict[str, Any]:
    """The structured-mode JSON object of an envelope (one element of a batch)."""
    out: dict[str, Any] = dict(cloudevent_attributes(env, traceparent=traceparent, tracestate=tracestate))
    out["data"] = dict(env.payload)
    return out


def encode_batch(events: Iterable[Envelope | tuple[Envelope, str | None]]) -> bytes:
    """The body of an `application/cloudevents-batch+json` POST (what the sidecar sends to ingest).

    Elements are envelopes or `(envelope, traceparent)` pairs.
    """
    items = []
    for item in events:
        env, tp = item if isinstance(item, tuple) else (item, None)
        items.append(to_structured(env, traceparent=tp))
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode()


def envelope_from_cloudevent(attrs: Mapping[str, Any], data: Any, *, has_data: bool = True) -> DecodedEvent:
    """Validate CloudEvent attributes plus data and build the envelope; errors use CloudEvent names.

    Unknown extension attributes are tolerated (KafkaSource adds its own) but must be validly named.
    """
    errors: list[FieldError] = []
    spec = attrs.get("specversion")
    if spec is None:
        errors.append(FieldError("specversion", "required"))
    elif spec != SPECVERSION:
        errors.append(FieldError("specversion", f"must be {SPECVERSION!r}"))
    ce_id = attrs.get("id")
    if ce_id is None:
        errors.append(FieldError("id", "required"))
    elif isinstance(ce_id, str) and not ce_id.strip():
        errors.append(FieldError("id", "must not be blank"))
    ct = attrs.get("datacontenttype")
    if ct is not None and (not isinstance(ct, str) or not _JSON_CT_RE.fullmatch(ct.split(";")[0].strip().lower())):
        errors.append(FieldError("datacontenttype", "must be application/json"))
    errors.extend(
        FieldError(name, "invalid extension attribute name (lowercase letters and digits, at most 20)")
        for name in attrs
        if name not in _CORE_ATTRS and name not in ("traceparent", "tracestate") and not _EXT_NAME_RE.fullmatch(name)
    )
    errors.extend(
        FieldError(name, "must be a string")
        for name in ("dataschema", "subject")
        if name in attrs and not isinstance(attrs[name], str)
    )

    traceparent = attrs.get("traceparent")
    trace_id = ""
    if traceparent is not None:
        tid = traceparent_trace_id(traceparent) if isinstance(traceparent, str) else None
        if tid is None:
            errors.append(FieldError("traceparent", "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"))
        else:
            trace_id = tid
    tracestate = attrs.get("tracestate")
    if tracestate is not None and not isinstance(tracestate, str):
        errors.append(FieldError("tracestate", "must be a string"))
        tracestate = None

    fields: dict[str, Any] = {
        "id": attrs.get("id"),
        "source": attrs.get("source"),
        "event_type": attrs.get("type"),
        "timestamp": attrs.get("time"),
        "trace_id": trace_id,
    }
    if has_data:
        fields["payload"] = data
    try:
        env = envelope_from_fields(fields)
    except EnvelopeError as exc:
        errors.extend(FieldError(_CE_NAME.get(e.field, e.field), e.reason) for e in exc.errors)
    if errors:
        raise EnvelopeError(list(dict.fromkeys(errors)))
    return DecodedEvent(env, traceparent if trace_id else None, tracestate)


def _structured(obj: Any) -> DecodedEvent:
    if not isinstance(obj, dict):
        raise EnvelopeError([FieldError("$", "a structured CloudEvent must be a JSON object")])
    attrs = {k: v for k, v in obj.items() if k not in ("data", "data_base64")}
    errors: list[FieldError] = []
    if "data_base64" in obj:
        errors.append(FieldError("data_base64", "binary data is not accepted; send JSON in data"))
    try:
        decoded = envelope_from_cloudevent(attrs, obj.get("data"), has_data="data" in obj)
    except EnvelopeError as exc:
        raise EnvelopeError([*errors, *exc.errors]) from None
    if errors:
        raise EnvelopeError(errors)
    return decoded


# The dispatcher's batch elements carry the Kafka extensions; other valid extension names take the loop.
_FAST_KEYS = frozenset({*_CORE_ATTRS, "traceparent", "tracestate", "data", "kafkatopic", "kafkapartition",
                        "kafkaoffset", "key"})  # fmt: skip


def _clean_text(value: Any, max_len: int) -> str | None:
    """`value` stripped when `_check_str` would accept it as a required string, else None."""
    if type(value) is not str:
        return None
    text = value.strip()
    # isprintable() (C, one pass) is False for every control character: the regex runs only then.
    if not text or len(text) > max_len or (not text.isprintable() and _CONTROL_CHARS.search(text)):
        return None
    return text


class EventFields(NamedTuple):
    """One decoded event as plain fields: what `DecodedEvent` holds, without building an `Envelope`.

    Attribute names match `Envelope`'s, so code written for an envelope reads these too.
    """

    id: str
    timestamp: datetime
    trace_id: str
    source: str
    event_type: str
    payload: Mapping[str, Any]
    traceparent: str | None
    tracestate: str | None

    @classmethod
    def of(cls, ev: DecodedEvent) -> EventFields:
        """The fields of a decoded event."""
        e = ev.envelope
        return cls(e.id, e.timestamp, e.trace_id, e.source, e.event_type, e.payload, ev.traceparent, ev.tracestate)


def _fast_structured(obj: Any) -> DecodedEvent | None:
    """The common, valid structured event decoded with a fraction of `_structured`'s checks' cost.

    Returns None for anything unusual (missing or odd attributes, a missing time, non-object
    data, any would-be error) so that `_structured` decides and words every error; for what it
    accepts, the result equals `_structured(obj)` (a property test holds the two equal).
    """
    f = _fast_fields(obj)
    if f is None:
        return None
    return DecodedEvent(Envelope(f.id, f.timestamp, f.trace_id, f.source, f.event_type, f.payload), f.traceparent,
                        f.tracestate)  # fmt: skip


def _fast_fields(obj: Any) -> EventFields | None:
    """`_fast_structured`'s checks; the fields of what it accepts, else None."""
    if type(obj) is not dict or obj.get("specversion") != SPECVERSION:
        return None
    data = obj.get("data")
    if type(data) is not dict:
        return None
    if not obj.keys() <= _FAST_KEYS:
        for name in obj:
            if name not in _FAST_KEYS and not _EXT_NAME_RE.fullmatch(name):
                return None  # includes data_base64
    event_id = _clean_text(obj.get("id"), MAX_ID_LENGTH)
    source = _clean_text(obj.get("source"), MAX_SOURCE_LENGTH)
    event_type = _clean_text(obj.get("type"), MAX_EVENT_TYPE_LENGTH)
    raw_time = obj.get("time")
    if event_id is None or source is None or event_type is None or type(raw_time) is not str:
        return None
    ct = obj.get("datacontenttype")
    if ct is not None and ct != JSON_CONTENT_TYPE and (
        type(ct) is not str or not _JSON_CT_RE.fullmatch(ct.split(";")[0].strip().lower())
    ):
        return None
    for name in ("dataschema", "subject"):
        if name in obj and type(obj[name]) is not str:
            return None
    traceparent = obj.get("traceparent")
    trace_id = ""
    if traceparent is not None:
        if type(traceparent) is not str:
            return None
        m = _TRACEPARENT_CANONICAL.fullmatch(traceparent)
        if m is not None and m.group(1) != _ZERO_TRACE and m.group(2) != _ZERO_SPAN:
            trace_id = m.group(1)  # what traceparent_trace_id returns, without strip/lower copies
        else:
            tid = traceparent_trace_id(traceparent)
            if tid is None:
                return None
            trace_id = tid
    tracestate = obj.get("tracestate")
    if tracestate is not None and type(tracestate) is not str:
        return None
    if not raw_time.strip():
        return None  # "now" and a derived id: the slow path's business
    try:
        timestamp = parse_timestamp(raw_time)
    except ValueError:
        return None
    return EventFields(event_id, timestamp, trace_id, source, event_type, data, traceparent if trace_id else None,
                       tracestate)  # fmt: skip


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError([FieldError("$", f"body is not valid JSON ({exc})")]) from None
    except RecursionError:
        # Hostile nesting must be a 400 like any other bad body, not an unhandled 500.
        raise EnvelopeError([FieldError("$", "body is not valid JSON (nested too deeply)")]) from None


def decode_batch(items: Any) -> tuple[DecodedEvent, ...]:
    """Decode a parsed batch array; every bad element's errors are reported as `[i].<attr>`."""
    if not isinstance(items, list):
        raise EnvelopeError([FieldError("$", "a CloudEvents batch must be a JSON array")])
    if not items:
        raise EnvelopeError([FieldError("$", "batch is empty")])
    out: list[DecodedEvent] = []
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        fast = _fast_structured(item)
        if fast is not None:
            out.append(fast)
            continue
        try:
            out.append(_structured(item))
        except EnvelopeError as exc:
            errors.extend(exc.prefixed(f"[{i}].").errors)
    if errors:
        raise EnvelopeError(errors)
    return tuple(out)


def decode_http_fields(headers: Mapping[str, str], body: bytes) -> tuple[EventFields, ...]:
    """`decode_http(...).events` as `EventFields`: the same events, or the same EnvelopeError.

    For callers that need each event's fields, not an `Envelope` (the processor writes one row
    per event): a batch whose every element takes the fast path builds no envelope objects
    (≈1 µs per event). Anything else goes through `decode_http`'s rules.
    """
    if (_header(headers, "content-type") or "").split(";")[0].strip().lower() == BATCH_CONTENT_TYPE:
        items = _loads(body)
        if type(items) is list and items:
            out = []
            for item in items:
                f = _fast_fields(item)
                if f is None:
                    break
                out.append(f)
            else:
                return tuple(out)
        return tuple(EventFields.of(ev) for ev in decode_batch(items))
    return tuple(EventFields.of(ev) for ev in decode_http(headers, body).events)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def decode_http(headers: Mapping[str, str], body: bytes) -> DecodedRequest:
    """Decode an ingest `POST /events` body in any accepted mode.

    * `Content-Type: application/cloudevents-batch+json` → batch (JSON array of structured events);
    * `application/cloudevents+json` → structured;
    * any `ce-*` header → binary (body = data);
    * otherwise JSON: an object with `specversion` is structured, anything else the seed's plain envelope.

    Raises EnvelopeError naming every bad field; a batch with one bad element is rejected whole.
    """
    ct = (_header(headers, "content-type") or "").split(";")[0].strip().lower()
    if ct == BATCH_CONTENT_TYPE:
        return DecodedRequest("batch", decode_batch(_loads(body)))
    if ct == STRUCTURED_CONTENT_TYPE:
        return DecodedRequest("structured", (_structured(_loads(body)),))
    ce = {k.lower()[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")}
    if ce:
        attrs: dict[str, Any] = {name: unquote(value) for name, value in ce.items()}
        if ct:
            attrs["datacontenttype"] = ct
        has_data = bool(body.strip())
        data = _loads(body) if has_data else None
        return DecodedRequest("binary", (envelope_from_cloudevent(attrs, data, has_data=has_data),))
    if ct and not _JSON_CT_RE.fullmatch(ct):
        raise EnvelopeError([FieldError("content-type", f"unsupported content type {ct!r}")])
    obj = _loads(body)
    if isinstance(obj, dict) and "specversion" in obj:
        return DecodedRequest("structured", (_structured(obj),))
    if isinstance(obj, list):
        raise EnvelopeError([FieldError("$", f"send batches as a JSON array with Content-Type {BATCH_CONTENT_TYPE}")])
    return DecodedRequest("plain", (DecodedEvent(envelope_from_dict(obj)),))
