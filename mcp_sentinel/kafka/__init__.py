"""Kafka helpers shared by ingest, the dispatcher, the processor and the tests.

Settings that make consumer groups behave on tansu (infra.md §3) live here, so every consumer in
the project joins quickly and is replaced quickly after a crash.
"""

from typing import Any

from mcp_sentinel.kafka.net import broker_reachable, parse_brokers

DEFAULT_TOPIC = "mcp.events"
DEFAULT_DLQ_TOPIC = "mcp.events.dlq"
DEFAULT_PARTITIONS = 3

CONSUMER_GROUP_SETTINGS: dict[str, int] = {
    # tansu holds each JoinGroup for about session_timeout/2, and a crashed member is replaced
    # after about 2 x session_timeout: small values keep restarts and tests fast.
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 2000,
}

__all__ = [
    "CONSUMER_GROUP_SETTINGS",
    "DEFAULT_DLQ_TOPIC",
    "DEFAULT_PARTITIONS",
    "DEFAULT_TOPIC",
    "broker_reachable",
    "ensure_topics",
    "parse_brokers",
]


def __getattr__(name: str) -> Any:
    # `ensure_topics` needs the Kafka client; load it only when asked for (ingest never is).
    if name == "ensure_topics":
        from mcp_sentinel.kafka.admin import ensure_topics

        return ensure_topics
    raise AttributeError(name)
