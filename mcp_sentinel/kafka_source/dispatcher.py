"""The consume → deliver → commit loop.

Each poll's records are delivered (per partition in offset order when `ordered`, otherwise up to
`max_in_flight` at once), each with retries and backoff; a record that cannot be delivered goes
to the dead-letter topic with the reason in its headers. Offsets are committed only after every
record of the poll was either accepted by the sink (2xx) or durably dead-lettered, so a crash at
any point redelivers (at least once, same CloudEvent ids) and never loses a record.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Gauge

from mcp_sentinel import telemetry
from mcp_sentinel.kafka_source.mapping import to_http
from mcp_sentinel.kafka_source.settings import DispatcherSettings

log = logging.getLogger(__name__)


class DispatcherMetrics:
    """Prometheus families of the dispatcher."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter("dispatcher_delivered_total", "Records the sink accepted (2xx)", registry=registry)
        self.retried = Counter("dispatcher_retries_total", "Delivery retries", ["reason"], registry=registry)
        self.dead_lettered = Counter("dispatcher_dead_lettered_total", "Records sent to the dead-letter topic",
                                     ["reason"], registry=registry)
        self.in_flight = Gauge("dispatcher_in_flight", "Records being delivered now", registry=registry)
        self.lag = Gauge("dispatcher_consumer_lag_records",
                         "Fetched but not yet committed records (from consumer positions, not the broker high "
                         "watermark, which tansu reports wrongly)", ["partition"], registry=registry)
        self.committed = Gauge("dispatcher_committed_offset", "Last committed offset", ["partition"],
                               registry=registry)


@dataclass(frozen=True)
class Outcome:
    """How one record ended: delivered, or dead-lettered with a reason."""

    delivered: bool
    reason: str = ""
    status: int = 0
    attempts: int = 0


class Dispatcher:
    """One KafkaSource: a consumer group member that forwards records to `settings.sink_url`."""

    def __init__(
        self,
        settings: DispatcherSettings,
        *,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = DispatcherMetrics(registry if registry is not None else CollectorRegistry())
        self._tracer = (tracer_provider or telemetry.setup_tracing("mcp-sentinel-dispatcher", {})).get_tracer(
            "mcp_sentinel.kafka_source")
        self._stop = threading.Event()
        self._http = httpx.Client(timeout=settings.timeout, limits=httpx.Limits(max_connections=settings.max_in_flight))
        self._pool = ThreadPoolExecutor(max_workers=settings.max_in_flight, thread_name_prefix="deliver")
        self._consumer: KafkaConsumer | None = None
        self._dlq: KafkaProducer | None = None

    def stop(self) -> None:
        """Ask the loop to finish the current poll, commit and leave the group."""
        self._stop.set()

    # --- delivery ---------------------------------------------------------------------------

    def _post(self, record: Any) -> Outcome:
        s = self.settings
        headers, body = to_http(record, source_name=s.source_name, source_namespace=s.source_namespace)
        parent = telemetry.extract_kafka(record.headers)
        attempt = 0
        while True:
            attempt += 1
            with self._tracer.start_as_current_span("kafka_source.deliver", context=parent, kind=SpanKind.CLIENT,
                                                    attributes={"kafka.topic": record.topic,
                                                                "kafka.partition": record.partition,
                                                                "kafka.offset": record.offset,
                                                                "delivery.attempt": attempt}) as span:
                send_headers = dict(headers)
                telemetry.inject_http(send_headers)
                try:
                    resp = self._http.post(s.sink_url, content=body, headers=send_headers)
                    status, reason = resp.status_code, f"http_{resp.status_code}"
                except httpx.HTTPError as exc:
                    status, reason = 0, f"transport_error: {type(exc).__name__}: {exc}"
                span.set_attribute("http.response.status_code", status)
                if 200 <= status < 300:
                    return Outcome(True, status=status, attempts=attempt)
                span.set_status(Status(StatusCode.ERROR, reason))
            if 400 <= status < 500 and status not in (408, 429):
                return Outcome(False, reason, status, attempt)  # the sink will never accept it
            if attempt > s.retry:
                return Outcome(False, f"retries_exhausted: {reason}", status, attempt)
            self.metrics.retried.labels("transport" if status == 0 else str(status)).inc()
            if self._stop.wait(s.backoff(attempt)):
                # Stopping mid-retry: abandon the poll uncommitted; the next owner redelivers it.
                raise InterruptedError("stopping")

    def _deliver(self, record: Any) -> None:
        self.metrics.in_flight.inc()
        try:
            outcome = self._post(record)
        finally:
            self.metrics.in_flight.dec()
        if outcome.delivered:
            self.metrics.delivered.inc()
            return
        self._dead_letter(record, outcome)

    def _dead_letter(self, record: Any, outcome: Outcome) -> None:
        s = self.settings
        extra = [
            ("dlq-reason", outcome.reason.encode()),
            ("dlq-status", str(outcome.status).encode()),
            ("dlq-attempts", str(outcome.attempts).encode()),
            ("dlq-source-topic", record.topic.encode()),
            ("dlq-source-partition", str(record.partition).encode()),
            ("dlq-source-offset", str(record.offset).encode()),
            ("dlq-sink", s.sink_url.encode()),
        ]
        headers = [(k, v or b"") for k, v in record.headers or ()] + extra
        delay = 0.5
        while True:
            try:
                if self._dlq is None:
                    self._dlq = KafkaProducer(bootstrap_servers=list(s.brokers), acks="all", linger_ms=0,
                                              client_id="mcp-sentinel-dispatcher-dlq")
                self._dlq.send(s.dead_letter_topic, key=record.key, value=record.value, headers=headers).get(
                    timeout=30)
                break
            except KafkaError as exc:
                # Never commit past a record that is neither delivered nor dead-lettered.
                log.warning("dead-letter produce failed (%s); retrying in %.1fs", exc, delay)
                if self._stop.wait(delay):
                    raise InterruptedError("stopping") from exc
                delay = min(delay * 2, 10)
        reason = outcome.reason.split(":")[0]
        self.metrics.dead_lettered.labels(reason).inc()
        log.warning("dead-lettered %s/%d@%d: %s", record.topic, record.partition, record.offset, outcome.reason)

    def _deliver_partition(self, records: Sequence[Any]) -> None:
        for rec in records:
            self._deliver(rec)

    def deliver_batch(self, by_partition: dict[TopicPartition, list[Any]]) -> None:
        """Deliver one poll's records; returns when each is delivered or dead-lettered."""
        if self.settings.ordered:
            futures = [self._pool.submit(self._deliver_partition, recs) for recs in by_partition.values()]
        else:
            futures = [self._pool.submit(self._deliver, r) for recs in by_partition.values() for r in recs]
        for fut in futures:
            fut.result()

    # --- consume loop -----------------------------------------------------------------------

    def _new_consumer(self) -> KafkaConsumer:
        s = self.settings
        consumer = KafkaConsumer(
            bootstrap_servers=list(s.brokers),
            group_id=s.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(300, s.session_timeout_ms // 3),
            max_poll_records=500,
            max_poll_interval_ms=30 * 60 * 1000,  # long retry schedules must not trigger a rebalance
            client_id="mcp-sentinel-dispatcher",
        )
        consumer.subscribe([s.topic])
        return consumer

    def _commit(self, consumer: KafkaConsumer, by_partition: dict[TopicPartition, list[Any]]) -> None:
        offsets = {tp: OffsetAndMetadata(recs[-1].offset + 1, "", -1) for tp, recs in by_partition.items()}
        try:
            consumer.commit(offsets)
        except CommitFailedError as exc:
            # A rebalance took the partitions away; the new owner redelivers (at least once).
            log.warning("commit failed after rebalance: %s", exc)
            return
        for tp, om in offsets.items():
            self.metrics.committed.labels(str(tp.partition)).set(om.offset)

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        for tp in consumer.assignment():
            with contextlib.suppress(KafkaError, AssertionError):
                committed = consumer.committed(tp) or 0
                self.metrics.lag.labels(str(tp.partition)).set(max(0, consumer.position(tp) - committed))

    def run(self) -> None:
        """Consume until `stop()`; the consumer always leaves the group cleanly on the way out."""
        consumer = self._consumer = self._new_consumer()
        log.info("dispatching %s (group %s) to %s", self.settings.topic, self.settings.group, self.settings.sink_url)
        last_lag = 0.0
        try:
            while not self._stop.is_set():
                polled = consumer.poll(timeout_ms=500)
                if polled:
                    batch: dict[TopicPartition, list[Any]] = defaultdict(list)
                    for tp, recs in polled.items():
                        batch[tp].extend(recs)
                    try:
                        self.deliver_batch(batch)
                    except InterruptedError:
                        break  # stopping mid-batch: nothing committed, records are redelivered
                    self._commit(consumer, batch)
                if time.monotonic() - last_lag > 2:
                    self._update_lag(consumer)
                    last_lag = time.monotonic()
        finally:
            self.close()

    def close(self) -> None:
        """Leave the group and release clients (idempotent)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for client in (self._consumer, self._dlq):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._consumer = self._dlq = None
        self._http.close()


__all__ = ["Dispatcher", "DispatcherMetrics", "Outcome"]
