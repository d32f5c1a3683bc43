"""The audit event envelope (upstream §5.1) and its validation.

Every event on the audit pipeline is an `Envelope`: the sidecar builds them, ingest validates
and produces them to Kafka, the processor stores them. The mapping to and from CloudEvents 1.0
lives in `mcp_sentinel.cloudevents_codec`.

Deliberate differences from upstream:

* `id` is part of the envelope. Producers set it once, so a redelivered or re-sent event keeps
  its id and the store can recognise it. An envelope that arrives without one gets an id
  derived from its content (`derive_id`) when it carries a timestamp, so a client retrying the
  same plain-JSON event produces the same id; without a timestamp there is nothing stable to
  derive from and a random id is generated.
* Validation reports every bad field at once (`EnvelopeError.errors`), not one
  `missing_fields` string.
* `timestamp` is validated (RFC 3339 with an offset) instead of silently becoming "now" at
  storage time; a missing one is filled with now (UTC).
* `payload` must be a JSON object: every consumer (materialised columns, analytics) reads
  object keys, and upstream's scalar payloads only ever produced empty columns.

This module is stdlib-only: the sidecar imports it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_ID_LENGTH = 256
MAX_SOURCE_LENGTH = 256
MAX_EVENT_TYPE_LENGTH = 256

_TRACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_ZERO_TRACE_ID = "0" * 32
_ID_NAMESPACE = uuid.UUID("6f1d2c1e-6c9b-4d1e-9a57-3b8a6f0e2d41")  # fixed: derived ids must be stable forever

ENVELOPE_FIELDS = ("id", "timestamp", "trace_id", "source", "event_type", "payload")


@dataclass(frozen=True)
class FieldError:
    """One problem with one field; `field` is a dotted path, prefixed `[i].` inside a batch."""

    field: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """JSON form used in 400 bodies."""
        return {"field": self.field, "reason": self.reason}


class EnvelopeError(ValueError):
    """An envelope (or a batch of them) is invalid; `errors` names every bad field."""

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in self.errors) or "invalid envelope")

    def prefixed(self, prefix: str) -> EnvelopeError:
        """The same errors with `prefix` prepended to every field path (for batch elements)."""
        return EnvelopeError([FieldError(f"{prefix}{e.field}", e.reason) for e in self.errors])


@dataclass(frozen=True)
class Envelope:
    """One audit event.

    `timestamp` is timezone-aware UTC; `trace_id` is 32 lowercase hex digits or `""`;
    `payload` is a JSON object.
    """

    id: str
    timestamp: datetime
    trace_id: str
    source: str
    event_type: str
    payload: Mapping[str, Any] = field(hash=False)

    def with_trace_id(self, trace_id: str) -> Envelope:
        """A copy carrying `trace_id` (ingest stamps the id of its `kafka.produce` span's trace)."""
        return Envelope(self.id, self.timestamp, trace_id, self.source, self.event_type, self.payload)

    @property
    def timestamp_rfc3339(self) -> str:
        """`timestamp` as RFC 3339 in UTC with a `Z` suffix and microseconds."""
        return format_timestamp(self.timestamp)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready seed envelope shape (`trace_id` omitted when empty)."""
        out: dict[str, Any] = {"id": self.id, "timestamp": self.timestamp_rfc3339}
        if self.trace_id:
            out["trace_id"] = self.trace_id
        out.update(source=self.source, event_type=self.event_type, payload=dict(self.payload))
        return out

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON of `to_dict()`."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def partition_key(self) -> str:
        """`<namespace>/<server>` from the payload: the Kafka key that keeps one server's events in order.

        Events without either field fall back to `source`, so they still spread by producer.
        """
        ns = self.payload.get("namespace")
        server = self.payload.get("server")
        if isinstance(ns, str) and isinstance(server, str) and (ns or server):
            return f"{ns}/{server}"
        return self.source


def format_timestamp(ts: datetime) -> str:
    """RFC 3339 UTC with microseconds and `Z`."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries an offset; raise ValueError otherwise.

    Fractions beyond microseconds (Go's RFC3339Nano) are accepted and truncated.
    """
    text = value.strip()
    if len(text) < 19 or text[10] not in "Tt ":
        raise ValueError("not an RFC 3339 date-time")
    parsed = datetime.fromisoformat(text.replace("t", "T").replace("z", "Z"))
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("timestamp has no UTC offset")
    return parsed.astimezone(UTC)


def canonical_json(value: Any) -> bytes:
    """Key-sorted compact JSON, the input of content-derived ids."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def derive_id(source: str, event_type: str, timestamp: str, payload: Mapping[str, Any]) -> str:
    """A stable id for an event that arrived without one: UUIDv5 over its canonical content.

    The same event sent twice gets the same id; events differing in any field (including the
    timestamp as sent) get different ids.
    """
    digest = hashlib.sha256(canonical_json([source, event_type, timestamp, payload])).hexdigest()
    return str(uuid.uuid5(_ID_NAMESPACE, digest))


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")  # a scan per character cost ~7 µs per event on ingest


def _check_str(obj: Mapping[str, Any], name: str, max_len: int, errors: list[FieldError], *, required: bool) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            errors.append(FieldError(name, "required"))
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be a string"))
        return ""
    value = value.strip()
    if not value:
        if required:
            errors.append(FieldError(name, "must not be blank"))
        return ""
    if len(value) > max_len:
        errors.append(FieldError(name, f"longer than {max_len} characters"))
    elif _CONTROL_CHARS.search(value):
        errors.append(FieldError(name, "contains control characters"))
    return value


def validate_trace_id(value: Any) -> tuple[str, str | None]:
    """(normalised trace id, error reason or None); `""`/None are a valid absent trace id."""
    if value is None:
        return "", None
    if not isinstance(value, str):
        return "", "must be a string"
    text = value.strip().lower()
    if not text:
        return "", None
    if not _TRACE_ID_RE.fullmatch(text) or text == _ZERO_TRACE_ID:
        return "", "must be 32 hex digits (W3C trace id), not all zero"
    return text, None


def envelope_from_fields(
    fields: Mapping[str, Any],
    *,
    now: datetime | None = None,
    allowed: frozenset[str] | None = None,
) -> Envelope:
    """Validate a mapping with envelope fields and build an `Envelope`, reporting every bad field.

    `allowed` (default: the envelope fields) lists the keys that may appear; anything else is an
    error, so a misspelt field (`event-type`) is reported rather than silently dropped.
    """
    errors: list[FieldError] = []
    known = allowed if allowed is not None else frozenset(ENVELOPE_FIELDS)
    errors.extend(FieldError(str(k), "unknown field") for k in fields if k not in known)

    event_id = _check_str(fields, "id", MAX_ID_LENGTH, errors, required=False)
    source = _check_str(fields, "source", MAX_SOURCE_LENGTH, errors, required=True)
    event_type = _check_str(fields, "event_type", MAX_EVENT_TYPE_LENGTH, errors, required=True)

    raw_ts = fields.get("timestamp")
    ts_text = ""
    timestamp = now or datetime.now(UTC)
    if isinstance(raw_ts, datetime):
        if raw_ts.tzinfo is None:
            errors.append(FieldError("timestamp", "timestamp has no UTC offset"))
        else:
            timestamp = raw_ts.astimezone(UTC)
            ts_text = format_timestamp(timestamp)
    elif raw_ts is not None and not isinstance(raw_ts, str):
        errors.append(FieldError("timestamp", "must be an RFC 3339 string"))
    elif isinstance(raw_ts, str) and raw_ts.strip():
        ts_text = raw_ts.strip()
        try:
            timestamp = parse_timestamp(ts_text)
        except ValueError as exc:
            errors.append(FieldError("timestamp", f"invalid RFC 3339 date-time ({exc})"))

    trace_id, trace_err = validate_trace_id(fields.get("trace_id"))
    if trace_err:
        errors.append(FieldError("trace_id", trace_err))

    payload = fields.get("payload")
    if "payload" not in fields or payload is None:
        errors.append(FieldError("payload", "required"))
    elif not isinstance(payload, dict):
        errors.append(FieldError("payload", f"must be a JSON object, not {_json_type(payload)}"))

    if errors:
        raise EnvelopeError(errors)
    assert isinstance(payload, dict)  # narrowed by the checks above
    if not event_id:
        event_id = derive_id(source, event_type, ts_text, payload) if ts_text else str(uuid.uuid4())
    return Envelope(event_id, timestamp, trace_id, source, event_type, payload)


def envelope_from_dict(obj: Any, *, now: datetime | None = None) -> Envelope:
    """Validate the seed's plain-JSON envelope shape (a decoded JSON object)."""
    if not isinstance(obj, dict):
        raise EnvelopeError([FieldError("$", f"must be a JSON object, not {_json_type(obj)}")])
    return envelope_from_fields(obj, now=now)


def new_envelope(
    source: str,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    trace_id: str = "",
    timestamp: datetime | None = None,
    event_id: str | None = None,
) -> Envelope:
    """Build a fresh, valid envelope (producers: the sidecar, tests); raises EnvelopeError if invalid."""
    fields: dict[str, Any] = {
        "source": source,
        "event_type": event_type,
        "payload": dict(payload),
        "trace_id": trace_id,
        "timestamp": timestamp or datetime.now(UTC),
        "id": event_id or str(uuid.uuid4()),
    }
    return envelope_from_fields(fields)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return "an object"
