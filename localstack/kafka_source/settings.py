"""Dispatcher configuration: the KafkaSource spec fields as environment variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mcp_sentinel.kafka import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC, parse_brokers

_DURATION_RE = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


class SettingsError(ValueError):
    """A variable has an impossible value (the message names it)."""


def parse_iso8601_duration(value: str) -> float:
    """Seconds in an ISO-8601 duration such as `PT0.2S`, `PT1M30S` or `P1D` (Knative `backoffDelay`)."""
    m = _DURATION_RE.fullmatch(value.strip().upper())
    if not m or value.strip().upper() in ("P", "PT") or value.strip().upper().endswith("T"):
        raise SettingsError(f"not an ISO-8601 duration: {value!r} (e.g. PT0.5S)")
    parts = {k: float(v) for k, v in m.groupdict().items() if v}
    return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class DispatcherSettings:
    """KafkaSource `spec` (topics, consumerGroup, sink, delivery) plus local process settings.

    `delivery_mode` `single` is Knative's contract (one binary-mode CloudEvent per POST); `batch`
    POSTs each partition's polled records as one `application/cloudevents-batch+json` body of at
    most `max_batch_events` records / `max_batch_bytes` (a single larger record goes alone).
    """

    brokers: tuple[str, ...]
    sink_url: str
    topic: str = DEFAULT_TOPIC
    group: str = "mcp-sentinel-kafkasource"
    source_name: str = "mcp-events"
    source_namespace: str = "mcp-sentinel"
    retry: int = 10
    backoff_policy: str = "exponential"
    backoff_delay: float = 0.5
    max_backoff: float = 60.0
    timeout: float = 30.0
    dead_letter_topic: str = DEFAULT_DLQ_TOPIC
    ordered: bool = True
    max_in_flight: int = 32
    metrics_port: int = 9104
    host: str = "0.0.0.0"  # containers listen on all interfaces; the local stack passes 127.0.0.1
    session_timeout_ms: int = 6000
    delivery_mode: str = "batch"
    max_batch_events: int = 500
    max_batch_bytes: int = 1024 * 1024
    fetch_max_wait_ms: int = 100
    # Sent as `Authorization: Bearer` on every delivery: the processor accepts only the event source.
    sink_auth_token: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DispatcherSettings:
        """Read and check the environment; raises SettingsError naming the bad variable."""
        sink = environ.get("SINK_URL", "").strip()
        if not sink.startswith(("http://", "https://")):
            raise SettingsError("SINK_URL must be an http(s) URL (the KafkaSource sink)")
        policy = environ.get("DELIVERY_BACKOFF_POLICY", "exponential").strip().lower()
        if policy not in ("exponential", "linear"):
            raise SettingsError("DELIVERY_BACKOFF_POLICY must be 'exponential' or 'linear'")
        order = environ.get("DELIVERY_ORDER", "ordered").strip().lower()
        if order not in ("ordered", "unordered"):
            raise SettingsError("DELIVERY_ORDER must be 'ordered' or 'unordered'")
        mode = environ.get("DELIVERY_MODE", "batch").strip().lower()
        if mode not in ("batch", "single"):
            raise SettingsError("DELIVERY_MODE must be 'batch' or 'single'")
        brokers = tuple(parse_brokers(environ.get("KAFKA_BROKERS", "kafka:9092")))
        if not brokers:
            raise SettingsError("KAFKA_BROKERS is empty")
        return cls(
            brokers=brokers,
            sink_url=sink,
            topic=environ.get("KAFKA_TOPIC", "").strip() or DEFAULT_TOPIC,
            group=environ.get("KAFKA_GROUP", "").strip() or "mcp-sentinel-kafkasource",
            source_name=environ.get("SOURCE_NAME", "mcp-events"),
            source_namespace=environ.get("SOURCE_NAMESPACE", "mcp-sentinel"),
            retry=_int(environ, "DELIVERY_RETRY", 10),
            backoff_policy=policy,
            backoff_delay=parse_iso8601_duration(environ.get("DELIVERY_BACKOFF_DELAY", "PT0.5S")),
            max_backoff=parse_iso8601_duration(environ.get("DELIVERY_MAX_BACKOFF", "PT60S")),
            timeout=parse_iso8601_duration(environ.get("DELIVERY_TIMEOUT", "PT30S")),
            dead_letter_topic=environ.get("DEAD_LETTER_TOPIC", "").strip() or DEFAULT_DLQ_TOPIC,
            ordered=order == "ordered",
            max_in_flight=_int(environ, "MAX_IN_FLIGHT", 32, minimum=1),
            metrics_port=_int(environ, "METRICS_PORT", 9104, minimum=1),
            host=environ.get("HOST", "0.0.0.0"),
            session_timeout_ms=_int(environ, "KAFKA_SESSION_TIMEOUT_MS", 6000, minimum=1000),
            delivery_mode=mode,
            max_batch_events=_int(environ, "MAX_BATCH_EVENTS", 500, minimum=1),
            max_batch_bytes=_int(environ, "MAX_BATCH_BYTES", 1024 * 1024, minimum=1024),
            fetch_max_wait_ms=_int(environ, "KAFKA_FETCH_MAX_WAIT_MS", 100, minimum=100),
            sink_auth_token=environ.get("SINK_AUTH_TOKEN", "").strip(),
        )

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based), as Knative computes it, capped."""
        if self.backoff_policy == "linear":
            delay = self.backoff_delay * attempt
        else:
            delay = self.backoff_delay * (2 ** (attempt - 1))
        return min(delay, self.max_backoff)
