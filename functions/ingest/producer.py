"""Producing events to Kafka and waiting for the broker's acknowledgement.

The producer is aiokafka's, running on ingest's own event loop: kafka-python's thread-based
producer tops out near 9k records/s here and its I/O thread fights the event loop for the GIL,
while aiokafka's sender lives on the loop and batches the same records several times faster
(bench: `python -m bench.ingest_throughput`). A request's records are all appended first (so
they share broker requests), then every delivery future is awaited; the caller answers 202 only
after all of them resolved.

The producer is created lazily and dropped after a failure, so ingest starts and answers
`/ready` while Kafka is down and reconnects when it returns. aiokafka itself (about 50-100 ms of
imports) is loaded by that first connection too, not when the module is imported: the first
`/events` of a process already waits for the TCP dial and the client's metadata bootstrap, and a
replica that only answered probes never pays for it. The served app starts `warm()` in the
background from its lifespan, so on a cold start both overlap the readiness hand-off instead of
delaying the first event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from mcp_sentinel.cloudevents_binary import KafkaRecord
from mcp_sentinel.kafka.net import broker_reachable
from mcp_sentinel.lazy_errors import error_type

log = logging.getLogger(__name__)


class ProduceError(RuntimeError):
    """Kafka did not acknowledge every record of a batch (nothing can be assumed written)."""


class EventProducer:
    """A lazily connected aiokafka producer with `acks=all`.

    Per-key order holds without idempotence: aiokafka keeps at most one produce request in
    flight per broker connection, so a retried batch cannot overtake a later one. Idempotence
    (`idempotent=True`, `KAFKA_ENABLE_IDEMPOTENCE`) additionally removes duplicates from producer
    retries on brokers that support aiokafka's InitProducerId v0 (real Kafka; tansu refuses it).
    Duplicates that do occur carry the same CloudEvent id and are dropped by the store.
    """

    def __init__(
        self,
        brokers: Sequence[str],
        *,
        timeout_ms: int = 10_000,
        linger_ms: int = 5,
        idempotent: bool = False,
        client_id: str = "mcp-sentinel-ingest",
    ) -> None:
        self._brokers = list(brokers)
        self._timeout_ms = timeout_ms
        self._linger_ms = linger_ms
        self._idempotent = idempotent
        self._client_id = client_id
        self._producer: Any = None
        self._partitioner: Any = None
        self._lock = asyncio.Lock()

    async def _get(self) -> Any:
        async with self._lock:
            if self._producer is None:
                # Bootstrapping against a dead broker retries for a long time; a TCP dial answers
                # "Kafka is down" at once so the caller gets its 503 promptly.
                dial = min(2.0, self._timeout_ms / 1000)
                if not await asyncio.to_thread(broker_reachable, self._brokers, dial):
                    raise ProduceError(f"kafka_unavailable: no broker reachable at {','.join(self._brokers)}")
                request_ms = max(1000, self._timeout_ms // 2)
                from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]  # see module docstring
                from aiokafka.partitioner import DefaultPartitioner  # type: ignore[import-untyped]

                if self._partitioner is None:
                    self._partitioner = DefaultPartitioner()
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._brokers,
                    acks="all",
                    enable_idempotence=self._idempotent,
                    linger_ms=self._linger_ms,
                    max_batch_size=256 * 1024,
                    max_request_size=4 * 1024 * 1024,
                    request_timeout_ms=request_ms,
                    client_id=self._client_id,
                )
                try:
                    async with asyncio.timeout(self._timeout_ms / 1000):
                        await producer.start()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def _reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await producer.stop()

    async def send_all(self, topic: str, records: Sequence[KafkaRecord]) -> None:
        """Produce `records` in order and return once the broker acknowledged all of them.

        Records are packed into one record batch per partition (the partition chosen by the
        client's default murmur2 partitioner, so a key always lands where a plain `send()` would
        put it) and each batch is awaited once, instead of one future per record.

        Raises ProduceError when any batch fails or the whole request exceeds the timeout.
        """
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self._timeout_ms / 1000):
                producer = await self._get()
                partitions = sorted(await producer.partitions_for(topic))
                choose = self._partitioner
                builders: dict[int, Any] = {}
                # murmur2 is pure Python; a request's keys repeat (one per server), so hash each once.
                part_of: dict[bytes, int] = {}
                for r in records:
                    part = part_of.get(r.key)
                    if part is None:
                        part = part_of[r.key] = choose(r.key, partitions, partitions)
                    builder = builders.get(part)
                    if builder is None:
                        builder = builders[part] = producer.create_batch()
                    if builder.append(key=r.key, value=r.value, timestamp=None, headers=r.headers) is None:
                        # Full: queue it (batches of one partition are sent in queue order).
                        futures.append(await producer.send_batch(builder, topic, partition=part))
                        builder = builders[part] = producer.create_batch()
                        builder.append(key=r.key, value=r.value, timestamp=None, headers=r.headers)
                for part, builder in builders.items():
                    futures.append(await producer.send_batch(builder, topic, partition=part))
                await asyncio.gather(*futures)
        except ProduceError:
            raise
        except (error_type("aiokafka.errors", "KafkaError"), OSError, TimeoutError) as exc:
            for fut in futures:
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()  # retrieved, so asyncio does not log it as unhandled
            detail = str(exc) or type(exc).__name__
            log.warning("produce to %s failed: %s", topic, detail)
            await self._reset()
            raise ProduceError(f"kafka_unavailable: {detail}") from exc

    @property
    def connected(self) -> bool:
        """Whether a started producer is held (False before the first connection and after a failure)."""
        return self._producer is not None

    async def warm(self) -> bool:
        """Connect now if possible (imports aiokafka); False when Kafka is unreachable (retried on demand)."""
        try:
            await self._get()
        except (ProduceError, error_type("aiokafka.errors", "KafkaError"), OSError, TimeoutError) as exc:
            log.info("kafka not reachable at start-up (will connect on the first event): %s", exc)
            return False
        return True

    async def close(self) -> None:
        """Flush and close the producer (idempotent)."""
        async with self._lock:
            await self._reset()
