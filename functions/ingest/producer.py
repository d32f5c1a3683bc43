"""Producing events to Kafka and waiting for the broker's acknowledgement.

kafka-python's producer is thread-based; a batch is handed to it in one worker thread, all sends
are queued first (so they share broker requests), then every future is awaited. The producer is
created lazily and dropped after a failure, so ingest starts and answers `/ready` while Kafka is
down and reconnects when it returns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError

from mcp_sentinel.cloudevents_codec import KafkaRecord
from mcp_sentinel.kafka.admin import broker_reachable

log = logging.getLogger(__name__)


class ProduceError(RuntimeError):
    """Kafka did not acknowledge every record of a batch (nothing can be assumed written)."""


class EventProducer:
    """A lazily connected kafka-python producer with `acks=all` and idempotence (ordered per key)."""

    def __init__(self, brokers: Sequence[str], *, timeout_ms: int = 10_000, linger_ms: int = 5) -> None:
        self._brokers = list(brokers)
        self._timeout_ms = timeout_ms
        self._linger_ms = linger_ms
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _get(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                # kafka-python blocks for many seconds bootstrapping against a dead broker; a TCP
                # dial answers "Kafka is down" at once so the caller gets its 503 promptly.
                if not broker_reachable(self._brokers, timeout=min(2.0, self._timeout_ms / 1000)):
                    raise KafkaConnectionError(f"no broker reachable at {','.join(self._brokers)}")
                request_ms = max(1000, self._timeout_ms // 2)
                self._producer = KafkaProducer(
                    bootstrap_servers=self._brokers,
                    acks="all",
                    linger_ms=self._linger_ms,
                    batch_size=256 * 1024,
                    max_block_ms=self._timeout_ms,
                    request_timeout_ms=request_ms,
                    delivery_timeout_ms=self._timeout_ms + self._linger_ms + request_ms,
                    max_request_size=4 * 1024 * 1024,
                    client_id="mcp-sentinel-ingest",
                )
            return self._producer

    def _reset(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=0.5)

    def send_all(self, topic: str, records: Sequence[KafkaRecord]) -> None:
        """Produce `records` in order and block until the broker acknowledged all of them.

        Raises ProduceError when any record fails or times out (blocking call: run it in a thread).
        """
        try:
            producer = self._get()
            futures = [producer.send(topic, key=r.key, value=r.value, headers=r.headers) for r in records]
            for fut in futures:
                fut.get(timeout=self._timeout_ms / 1000)
        except (KafkaError, OSError) as exc:
            log.warning("produce to %s failed: %s", topic, exc)
            self._reset()
            raise ProduceError(f"kafka_unavailable: {exc}") from exc

    def close(self) -> None:
        """Flush and close the producer (idempotent)."""
        self._reset()
