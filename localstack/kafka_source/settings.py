"""Dispatcher configuration: the KafkaSource spec fields as environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mcp_sentinel.env import SettingsError as SettingsError
from mcp_sentinel.env import choice, duration, http_url, integer, text
from mcp_sentinel.kafka import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC, parse_brokers


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
        sink = http_url(environ, "SINK_URL")
        if not sink:
            raise SettingsError("SINK_URL must be an http(s) URL (the KafkaSource sink)")
        policy = choice(environ, "DELIVERY_BACKOFF_POLICY", "exponential", ("exponential", "linear"))
        order = choice(environ, "DELIVERY_ORDER", "ordered", ("ordered", "unordered"))
        mode = choice(environ, "DELIVERY_MODE", "batch", ("batch", "single"))
        brokers = tuple(parse_brokers(environ.get("KAFKA_BROKERS", "kafka:9092")))
        if not brokers:
            raise SettingsError("KAFKA_BROKERS is empty")
        return cls(
            brokers=brokers,
            sink_url=sink,
            topic=text(environ, "KAFKA_TOPIC", DEFAULT_TOPIC),
            group=text(environ, "KAFKA_GROUP", "mcp-sentinel-kafkasource"),
            source_name=environ.get("SOURCE_NAME", "mcp-events"),
            source_namespace=environ.get("SOURCE_NAMESPACE", "mcp-sentinel"),
            retry=integer(environ, "DELIVERY_RETRY", 10, minimum=0),
            backoff_policy=policy,
            backoff_delay=duration(environ, "DELIVERY_BACKOFF_DELAY", "PT0.5S"),
            max_backoff=duration(environ, "DELIVERY_MAX_BACKOFF", "PT60S"),
            timeout=duration(environ, "DELIVERY_TIMEOUT", "PT30S"),
            dead_letter_topic=text(environ, "DEAD_LETTER_TOPIC", DEFAULT_DLQ_TOPIC),
            ordered=order == "ordered",
            max_in_flight=integer(environ, "MAX_IN_FLIGHT", 32, minimum=1),
            metrics_port=integer(environ, "METRICS_PORT", 9104, minimum=1, maximum=65535),
            host=environ.get("HOST", "0.0.0.0"),
            session_timeout_ms=integer(environ, "KAFKA_SESSION_TIMEOUT_MS", 6000, minimum=1000),
            delivery_mode=mode,
            max_batch_events=integer(environ, "MAX_BATCH_EVENTS", 500, minimum=1),
            max_batch_bytes=integer(environ, "MAX_BATCH_BYTES", 1024 * 1024, minimum=1024),
            fetch_max_wait_ms=integer(environ, "KAFKA_FETCH_MAX_WAIT_MS", 100, minimum=100),
            sink_auth_token=text(environ, "SINK_AUTH_TOKEN"),
        )

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based), as Knative computes it, capped."""
        if self.backoff_policy == "linear":
            delay = self.backoff_delay * attempt
        else:
            delay = self.backoff_delay * (2 ** (attempt - 1))
        return min(delay, self.max_backoff)
