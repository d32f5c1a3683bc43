"""Topic provisioning and broker reachability checks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from mcp_sentinel.kafka.net import broker_reachable, parse_brokers

__all__ = ["KafkaError", "broker_reachable", "ensure_topics", "parse_brokers", "warm_partitions"]


def ensure_topics(
    brokers: list[str], topics: Iterable[str], *, partitions: int = 3, replication: int = 1, timeout: float = 10.0
) -> None:
    """Create the topics that do not exist yet (idempotent); raises KafkaError when the broker refuses."""
    ms = int(timeout * 1000)
    admin = KafkaAdminClient(bootstrap_servers=brokers, request_timeout_ms=ms, client_id="sentinel-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, partitions, replication) for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing, timeout_ms=ms)
    finally:
        admin.close()


def warm_partitions(brokers: list[str], timeout: float = 5.0) -> int:
    """Fetch once from every partition of every topic; returns how many partitions were read.

    The local `kafka` part's gate (`localstack.kafka_gate`) calls this before it lets any other
    client reach the broker. It was written for "a produce that comes first after a restart is
    written at offset 0"; that turned out to be the old store (s3rver) ignoring tansu's conditional
    writes, fixed by `localstack.s3_server`, so the warm-up is now a second line of defence.
    Raises KafkaTimeoutError when some partition gave no fetch response within `timeout`.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=brokers,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        request_timeout_ms=int(timeout * 1000) + 1000,
        consumer_timeout_ms=int(timeout * 1000),
    )
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in consumer.topics()
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not parts:
            return 0
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        # A partition's high watermark is known once a fetch response for it arrived: that fetch is the
        # one that restores tansu's end offset, so wait for all of them (empty partitions included).
        deadline = time.monotonic() + timeout
        while any(consumer.highwater(tp) is None for tp in parts):
            if time.monotonic() > deadline:
                unread = [f"{tp.topic}/{tp.partition}" for tp in parts if consumer.highwater(tp) is None]
                raise KafkaTimeoutError(f"no fetch response within {timeout}s for {unread}")
            consumer.poll(timeout_ms=200, max_records=10_000)
        return len(parts)
    finally:
        consumer.close()
