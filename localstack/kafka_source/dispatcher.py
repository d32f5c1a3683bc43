"""The consume → deliver → commit loop.

Each poll's records are delivered per partition (partitions concurrently; within one in offset
order when `ordered`, otherwise, in single mode, up to `max_in_flight` records at once), with
retries and backoff (`delivery.py`); a record that cannot be delivered goes to the dead-letter
topic with the reason in its headers. Offsets are committed only after every record of the poll
was either accepted by the sink (2xx) or durably dead-lettered, so a crash at any point
redelivers (at least once, same CloudEvent ids) and never loses a record.

HTTP runs on an asyncio loop (one aiohttp session); the kafka-python consumer, which is not
thread-safe, is only ever touched from one dedicated thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from localstack.kafka_source.delivery import Delivery, Outcome, Stopping
from localstack.kafka_source.metrics import DispatcherMetrics
from localstack.kafka_source.settings import DispatcherSettings
from mcp_sentinel import telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")


class Dispatcher:
    """One KafkaSource: a consumer group member that forwards records to `settings.sink_url`."""

    def __init__(
        self,
        settings: DispatcherSettings,
        *,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
        record_spans: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = DispatcherMetrics(registry if registry is not None else CollectorRegistry())
        self._tracer = (tracer_provider or telemetry.setup_tracing("mcp-sentinel-dispatcher", {})).get_tracer(
            "localstack.kafka_source")
        self._record_spans = record_spans
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._kafka_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consumer")
        self._consumer: KafkaConsumer | None = None
        self._dlq: KafkaProducer | None = None
        # Partition tasks dead-letter from worker threads concurrently: create one producer and write
        # one batch at a time (unguarded, two threads could each create a producer; a suite run once
        # missed a dead-lettered record under that concurrency).
        self._dlq_lock = threading.Lock()
        self._closed = False
        self._committed_offsets: dict[TopicPartition, int] = {}

    def stop(self) -> None:
        """Ask the loop to finish the current poll, commit and leave the group (any thread, signal-safe)."""
        self._stop.set()
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stopping.set)

    async def _on_consumer_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._kafka_thread, fn, *args)

    # --- dead letters -------------------------------------------------------------------------

    def _dlq_send(self, records: Sequence[Any], outcome: Outcome) -> None:
        with self._dlq_lock:
            self._dlq_send_locked(records, outcome)

    def _dlq_send_locked(self, records: Sequence[Any], outcome: Outcome) -> None:
        s = self.settings
        if self._dlq is None:
            # Idempotence off on purpose: a broker that records a producer's sequence before it
            # stores the batch (tansu 0.6 does) answers a retry "duplicate" after a crash, and the
            # record is lost though acknowledged. A retried dead letter may instead appear twice,
            # which readers tell apart by the dlq-source-* headers.
            self._dlq = KafkaProducer(bootstrap_servers=list(s.brokers), acks="all", linger_ms=0,
                                      enable_idempotence=False, client_id="mcp-sentinel-dispatcher-dlq")
        futures = []
        for record in records:
            extra = [
                ("dlq-reason", outcome.reason.encode()),
                ("dlq-status", str(outcome.status).encode()),
                ("dlq-attempts", str(outcome.attempts).encode()),
                ("dlq-source-topic", record.topic.encode()),
                ("dlq-source-partition", str(record.partition).encode()),
                ("dlq-source-offset", str(record.offset).encode()),
                ("dlq-sink", s.sink_url.encode()),
                ("dlq-delivery-mode", s.delivery_mode.encode()),
            ]
            if outcome.response:
                extra.append(("dlq-response", outcome.response))
            headers = [(k, v or b"") for k, v in record.headers or ()] + extra
            futures.append(self._dlq.send(s.dead_letter_topic, key=record.key, value=record.value, headers=headers))
        for fut in futures:
            fut.get(timeout=30)

    async def _dead_letter(self, records: Sequence[Any], outcome: Outcome) -> None:
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(self._dlq_send, records, outcome)
                break
            except KafkaError as exc:
                # Never commit past a record that is neither delivered nor dead-lettered (a retry
                # may write some of them twice: the DLQ is at least once too).
                log.warning("dead-letter produce failed (%s); retrying in %.1fs", exc, delay)
                assert self._stopping is not None
                try:
                    await asyncio.wait_for(self._stopping.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, 10)
                    continue
                raise Stopping from exc
        self.metrics.dead_lettered.labels(outcome.reason.split(":")[0]).inc(len(records))
        for record in records:
            log.warning("dead-lettered %s/%d@%d: %s", record.topic, record.partition, record.offset, outcome.reason)

    # --- one poll -----------------------------------------------------------------------------

    async def _deliver_poll(self, delivery: Delivery, by_partition: dict[TopicPartition, list[Any]]) -> None:
        """Deliver one poll's records; returns when each is delivered or dead-lettered."""
        async with asyncio.TaskGroup() as tg:
            if self.settings.ordered or self.settings.delivery_mode == "batch":
                for recs in by_partition.values():
                    tg.create_task(delivery.partition(recs))
            else:
                # The session's connection limit (max_in_flight) bounds how many are sent at once.
                for recs in by_partition.values():
                    for rec in recs:
                        tg.create_task(delivery.one(rec))

    def _new_consumer(self) -> KafkaConsumer:
        s = self.settings
        consumer = KafkaConsumer(
            bootstrap_servers=list(s.brokers),
            group_id=s.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(300, s.session_timeout_ms // 3),
            max_poll_records=s.max_batch_events,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_poll_interval_ms=30 * 60 * 1000,  # long retry schedules must not trigger a rebalance
            client_id="mcp-sentinel-dispatcher",
        )
        consumer.subscribe([s.topic])
        return consumer

    def _commit(self, consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata], *,
                sync: bool = False) -> None:
        """Commit delivered offsets; asynchronously while running (a later commit covers a lost one)."""
        if not sync:
            consumer.commit_async(offsets, callback=self._committed)
            return
        try:
            consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            self._committed(offsets, exc)
            return
        self._committed(offsets, None)

    def _committed(self, offsets: dict[TopicPartition, OffsetAndMetadata], response: object) -> None:
        if isinstance(response, Exception):
            # A rebalance took the partitions away; the new owner redelivers (at least once).
            log.warning("commit failed: %s", response)
            return
        for tp, om in offsets.items():
            self._committed_offsets[tp] = om.offset
            self.metrics.committed.labels(str(tp.partition)).set(om.offset)

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        # From the offsets this member committed itself: `consumer.committed()` is a blocking
        # OffsetFetch per partition on the consumer thread, which held up the next poll (a
        # latency spike every 2 s at 1,000 events/s). A partition this member has not committed
        # yet has no lag sample until its first commit.
        assigned = consumer.assignment()
        for tp in assigned:
            with contextlib.suppress(KafkaError, AssertionError, ValueError):
                committed = self._committed_offsets.get(tp)
                if committed is not None:
                    self.metrics.lag.labels(str(tp.partition)).set(max(0, consumer.position(tp) - committed))
        for tp in list(self._committed_offsets):
            if tp not in assigned:
                del self._committed_offsets[tp]  # revoked: its next owner reports it

    def _poll(self, consumer: KafkaConsumer) -> dict[TopicPartition, list[Any]]:
        try:
            polled = consumer.poll(timeout_ms=500)
        except KafkaError as exc:
            # The broker is restarting or unreachable: nothing was fetched, so nothing is lost; keep
            # polling (the consumer reconnects) instead of letting the dispatcher die.
            self.metrics.poll_errors.inc()
            log.warning("poll failed (%s); retrying", exc.__class__.__name__)
            time.sleep(0.5)
            return {}
        return {tp: list(recs) for tp, recs in polled.items() if recs}

    # --- main loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until `stop()`; the consumer always leaves the group cleanly on the way out."""
        try:
            asyncio.run(self._run())
        finally:
            self.close()

    async def _run(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self._stopping = stopping = asyncio.Event()
        if self._stop.is_set():
            stopping.set()
        connector = aiohttp.TCPConnector(limit=s.max_in_flight)
        timeout = aiohttp.ClientTimeout(total=s.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            delivery = Delivery(s, http, self.metrics, self._tracer, stopping, self._dead_letter,
                                record_spans=self._record_spans)
            consumer = self._consumer = await self._on_consumer_thread(self._new_consumer)
            log.info("dispatching %s (group %s) to %s, %s mode", s.topic, s.group, s.sink_url, s.delivery_mode)
            last_lag = 0.0
            delivered: dict[TopicPartition, OffsetAndMetadata] = {}
            try:
                # The next poll runs on the consumer thread while this one's records are delivered;
                # its records are only delivered after these, so each partition stays in order.
                next_poll = asyncio.ensure_future(self._on_consumer_thread(self._poll, consumer))
                while not stopping.is_set():
                    batch = await next_poll
                    next_poll = asyncio.ensure_future(self._on_consumer_thread(self._poll, consumer))
                    if batch:
                        interrupted = False
                        try:
                            await self._deliver_poll(delivery, batch)
                        except* Stopping:
                            interrupted = True
                        if interrupted:
                            break  # stopping mid-retry: nothing committed, records are redelivered
                        offsets = {tp: OffsetAndMetadata(recs[-1].offset + 1, "", -1) for tp, recs in batch.items()}
                        delivered.update(offsets)
                        await self._on_consumer_thread(self._commit, consumer, offsets)
                    if time.monotonic() - last_lag > 2:
                        await self._on_consumer_thread(self._update_lag, consumer)
                        last_lag = time.monotonic()
                # Records of a poll in progress are neither delivered nor committed: redelivered later.
                with contextlib.suppress(Exception):
                    await next_poll
            finally:
                if delivered:
                    await self._on_consumer_thread(functools.partial(self._commit, consumer, delivered, sync=True))
                await self._on_consumer_thread(self._close_kafka)
                self._loop = None

    def _close_kafka(self) -> None:
        for client in (self._consumer, self._dlq):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._consumer = self._dlq = None

    def close(self) -> None:
        """Leave the group and release clients (idempotent)."""
        self._stop.set()
        if self._closed:
            return
        self._closed = True
        self._kafka_thread.submit(self._close_kafka).result()
        self._kafka_thread.shutdown(wait=True)


__all__ = ["Dispatcher", "DispatcherMetrics", "Outcome"]
