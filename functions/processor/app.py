"""The processor function: CloudEvents over HTTP (as Knative KafkaSource delivers them) → ClickHouse.

`create_app(settings)` builds a plain Starlette app (five routes, no OpenAPI: FastAPI's import
alone cost ~230 ms of each scale-from-zero start, bench/import_time.py). Each POST carries one
event (binary or structured mode, Kafka metadata in `ce-kafkatopic`/`ce-kafkapartition`/
`ce-kafkaoffset`/`ce-key` extensions) or a batch (`application/cloudevents-batch+json`). The
answer comes only after the rows are stored:

* 200 `{"inserted": n, "duplicates": m}`: stored (a redelivered id is a duplicate, not a new row);
* 400 `{"error": "invalid_event", "errors": [{"field", "reason"}]}`: never retry (dead-letter it);
* 422 `{"error": "rejected_by_storage"}`: ClickHouse refused these rows; retrying will not help;
* 503 `{"error": "storage_unavailable"}`: ClickHouse is unreachable; retry later.

Differences from upstream §6.2/§11.24: envelopes are validated before insert, a poison event
fails only its own delivery (the batch is retried event-group by event-group), redelivery is
idempotent by event id, and nothing is acknowledged before it is durably inserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from functions.processor.batcher import MicroBatcher
from functions.processor.delivery_auth import DeliveryAuth
from functions.processor.settings import ProcessorSettings
from mcp_sentinel.cloudevents_codec import decode_http_fields
from mcp_sentinel.envelope import EnvelopeError
from mcp_sentinel.storage import rollups
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.events import EventRecord, EventWriter, RecordEncodingError, WriteResult
from mcp_sentinel.storage.migrations import migrate

log = logging.getLogger("functions.processor")
_PROPAGATOR = TraceContextTextMapPropagator()


class StorageUnavailable(Exception):
    """ClickHouse could not be reached; the delivery should be retried."""


class StorageRejected(Exception):
    """ClickHouse refused the rows (not a connectivity problem); retrying will not help."""


class Storage:
    """A lazily (re)connected writer: a ClickHouse restart costs one failed batch, not a process restart."""

    def __init__(self, settings: ProcessorSettings) -> None:
        self.settings = settings.clickhouse
        self.processor_settings = settings
        self._lock = threading.Lock()
        self._writer: EventWriter | None = None

    def _connect(self) -> EventWriter:
        with self._lock:
            if self._writer is None:
                admin = clickhouse_client_from_url(self.settings.url)
                try:
                    migrate(admin, self.settings.database, retention_days=self.settings.retention_days)
                finally:
                    admin.close()
                client = clickhouse_client_from_url(self.settings.url, self.settings.database)
                ps = self.processor_settings
                writer = EventWriter(
                    client, self.settings.database, recent_ids=ps.dedup_recent_ids, dedup=ps.dedup_mode
                )
                if ps.dedup_warm_minutes:
                    loaded = writer.warm(timedelta(minutes=ps.dedup_warm_minutes))
                    log.info("dedup: %d recently stored ids loaded", loaded)
                self._writer = writer
            return self._writer

    def reset(self) -> None:
        """Drop the client so the next call reconnects."""
        with self._lock:
            if self._writer is not None:
                try:
                    self._writer.client.close()
                except Exception:  # closing a broken pool must not mask the original error
                    log.debug("closing ClickHouse client failed", exc_info=True)
            self._writer = None

    def write(self, records: Sequence[EventRecord]) -> WriteResult:
        """Store records; StorageUnavailable / StorageRejected classify failures."""
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        try:
            return self._connect().write(records)
        except RecordEncodingError as exc:
            raise StorageRejected(str(exc)) from exc
        except OperationalError as exc:
            self.reset()
            raise StorageUnavailable(str(exc)) from exc
        except DatabaseError as exc:
            if "Code: " not in str(exc):  # transport-level failure reported as DatabaseError
                self.reset()
                raise StorageUnavailable(str(exc)) from exc
            raise StorageRejected(str(exc)) from exc
        except OSError as exc:
            self.reset()
            raise StorageUnavailable(str(exc)) from exc

    def seal(self) -> int:
        """Seal closed hours/days into the rollups the API reads (storage/rollups.py); 0 when unreachable."""
        try:
            writer = self._connect()
            return rollups.seal_pending(writer.client, self.settings.database)
        except Exception:  # the next round retries; reads stay exact meanwhile (unsealed hours read raw)
            log.warning("rollup sealing failed", exc_info=True)
            self.reset()
            return 0

    def ping(self) -> bool:
        """True when ClickHouse answers (and the schema is in place)."""
        try:
            writer = self._connect()
            writer.client.query("SELECT 1")
            return True
        except Exception:  # readiness only reports; the next write classifies the error
            self.reset()
            return False


@dataclass(frozen=True)
class DeliveryMeta:
    """Span contexts and Kafka coordinates of one delivery's events."""

    contexts: tuple[trace.SpanContext, ...]
    topic: str
    partition: str
    offset: int | None
    recording: bool = True


class Metrics:
    """Processor metrics in their own registry (no import-time globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batch_size = Histogram(
            "processor_batch_size", "Events per ClickHouse insert", registry=r,
            buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10000),
        )  # fmt: skip
        self.insert_latency = Histogram("processor_insert_latency_seconds", "Time to store one batch", registry=r)
        self.inserted = Counter("processor_events_inserted", "Events stored", registry=r)
        self.duplicates = Counter("processor_events_duplicate", "Redelivered events already stored", registry=r)
        self.rejected = Counter("processor_events_rejected", "Events refused", ["reason"], registry=r)
        self.paused = Gauge("processor_intake_paused", "1 while intake waits for ClickHouse to catch up", registry=r)
        self.pause_transitions = Counter(
            "processor_intake_pause_transitions", "Transitions into the paused state", registry=r
        )

    def on_pause(self, paused: bool) -> None:
        """Batcher callback."""
        self.paused.set(1 if paused else 0)
        if paused:
            self.pause_transitions.inc()


def _tracing_enabled(provider: trace.TracerProvider | None) -> bool:
    """False while no SDK provider is installed: then every span would be a no-op, so skip them all.

    Checked per request because a global provider may be installed after the app is built.
    """
    current = provider or trace.get_tracer_provider()
    return not isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _kafka_meta(headers: Any) -> tuple[str, str, int | None]:
    topic = headers.get("ce-kafkatopic") or headers.get("ce-topic") or ""
    source = headers.get("ce-source") or ""
    if not topic and "#" in source and "/kafkasources/" in source:
        topic = source.rsplit("#", 1)[1]
    # Knative's KafkaSource (and our dispatcher) name them kafkapartition/kafkaoffset; older
    # deliveries used partition/offset.
    partition = headers.get("ce-kafkapartition") or headers.get("ce-partition") or ""
    raw_offset = headers.get("ce-kafkaoffset") or headers.get("ce-offset") or ""
    offset = int(raw_offset) if raw_offset.isdigit() else None
    return topic, partition, offset


def create_app(
    settings: ProcessorSettings,
    *,
    storage: Storage | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    delivery_auth: DeliveryAuth | None = None,
) -> Starlette:
    """The processor ASGI app; the micro-batcher starts with the app's lifespan.

    Spans go to `tracer_provider` (default: the global one, looked up lazily).
    """
    store = storage or Storage(settings)
    auth = delivery_auth or DeliveryAuth(settings)
    metrics = Metrics()
    tracer = trace.get_tracer("mcp_sentinel.processor", tracer_provider=tracer_provider)

    def flush(groups: list[Sequence[EventRecord]], metas: list[Any]) -> list[WriteResult | BaseException]:
        records = [r for g in groups for r in g]
        links: list[Link] = []
        if any(m.recording for m in metas):
            links = [Link(c) for m in metas for c in m.contexts[1:]] + [
                Link(c) for m in metas[1:] for c in m.contexts[:1]
            ]
        first = next((c for m in metas for c in m.contexts), None)
        parent = trace.set_span_in_context(trace.NonRecordingSpan(first)) if first else Context()
        offsets = [m.offset for m in metas if m.offset is not None]
        topics = sorted({m.topic for m in metas if m.topic})
        partitions = sorted({m.partition for m in metas if m.partition})
        ranges: dict[tuple[str, str], list[int]] = {}
        for m in metas:
            if m.offset is not None:
                ranges.setdefault((m.topic, m.partition), []).append(m.offset)
        attrs: dict[str, Any] = {
            "batch.size": len(records),
            "kafka.batch.message_count": len(groups),
            "kafka.partition_count": len(partitions),
            "kafka.offset_ranges": ",".join(f"{t}/{p}:{min(o)}-{max(o)}" for (t, p), o in sorted(ranges.items())),
        }
        if offsets:
            attrs.update({"kafka.first_offset": min(offsets), "kafka.last_offset": max(offsets)})
        if len(topics) == 1:
            attrs["kafka.topic"] = topics[0]
        elif topics:
            attrs["kafka.topics"] = ",".join(topics)
        if len(partitions) == 1:
            attrs["kafka.partition"] = partitions[0]
        elif partitions:
            attrs["kafka.partitions"] = ",".join(partitions)
        t0 = time.perf_counter()
        with tracer.start_as_current_span(
            "clickhouse.insert_batch", context=parent, kind=SpanKind.CLIENT, links=links, attributes=attrs
        ) as span:
            metrics.batch_size.observe(len(records))
            outcomes: list[WriteResult | BaseException]
            try:
                result = store.write(records)
                outcomes = _split(result, groups)
            except StorageRejected as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                # Find the poison delivery: store each delivery on its own.
                outcomes = []
                for g in groups:
                    try:
                        outcomes.append(store.write(g) if len(groups) > 1 else _raise(exc))
                    except (StorageRejected, StorageUnavailable) as one:
                        outcomes.append(one)
            except StorageUnavailable as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                outcomes = [exc] * len(groups)
            metrics.insert_latency.observe(time.perf_counter() - t0)
        for meta, outcome in zip(metas, outcomes, strict=True):
            if not meta.recording:
                continue  # nothing of this delivery is traced: skip tens of thousands of no-op spans per second
            for ctx in meta.contexts:
                if not ctx.is_valid:
                    continue
                ev_span = tracer.start_span(
                    "clickhouse.insert_event",
                    context=trace.set_span_in_context(trace.NonRecordingSpan(ctx)),
                    kind=SpanKind.CLIENT,
                    attributes={"batch.size": len(records)},
                )
                if isinstance(outcome, BaseException):
                    ev_span.record_exception(outcome)
                    ev_span.set_status(Status(StatusCode.ERROR, str(outcome)))
                ev_span.end()
        return outcomes

    batcher: MicroBatcher[EventRecord, WriteResult] = MicroBatcher(
        flush,
        max_events=settings.batch_max_events,
        max_wait=settings.batch_max_wait_ms / 1000,
        max_pending=settings.max_pending_events,
        busy_wait=settings.batch_busy_wait_ms / 1000,
        groups=settings.batch_groups,
    )
    batcher.stats.on_pause_change.append(metrics.on_pause)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        sealer = asyncio.create_task(_seal_forever(store, settings.rollup_seal_seconds))
        try:
            yield
        finally:
            sealer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sealer
            await batcher.stop()

    async def receive(request: Request) -> Response:
        """One KafkaSource delivery (binary/structured) or a CloudEvents batch."""
        headers = request.headers
        checked = await auth.check_async(headers)
        if not checked.ok:
            # Not a poison event: the sender is not the event source. Counted per delivery.
            metrics.rejected.labels(reason=checked.error).inc()
            extra = {"WWW-Authenticate": "Bearer"} if checked.status == 401 else None
            return JSONResponse({"error": checked.error, "message": checked.message}, status_code=checked.status,
                                headers=extra)  # fmt: skip
        body = await request.body()
        try:
            events = decode_http_fields(dict(headers.items()), body)
        except EnvelopeError as exc:
            metrics.rejected.labels(reason="invalid_event").inc()
            return JSONResponse(
                {"error": "invalid_event", "message": str(exc), "errors": [e.to_dict() for e in exc.errors]},
                status_code=400,
            )
        topic, partition, offset = _kafka_meta(headers)
        contexts: list[trace.SpanContext] = []
        recording = False
        if _tracing_enabled(tracer_provider):
            attrs: dict[str, Any] = {"kafka.topic": topic, "kafka.partition": partition}
            if offset is not None:
                attrs["kafka.offset"] = offset
            for ev in events:
                carrier = {"traceparent": ev.traceparent} if ev.traceparent else {}
                if ev.tracestate:
                    carrier["tracestate"] = ev.tracestate
                # start_span/end instead of a context manager: no context attach/detach per event.
                span = tracer.start_span(
                    "kafka.consume", context=_PROPAGATOR.extract(carrier), kind=SpanKind.CONSUMER, attributes=attrs
                )
                recording = recording or span.is_recording()
                contexts.append(span.get_span_context())
                span.end()
        records = [EventRecord.from_envelope(ev) for ev in events]
        meta = DeliveryMeta(tuple(contexts), topic, partition, offset, recording)
        try:
            result = await batcher.submit(records, meta)
        except StorageUnavailable:
            metrics.rejected.labels(reason="storage_unavailable").inc(len(records))
            return JSONResponse(
                {"error": "storage_unavailable", "message": "ClickHouse is unreachable; retry"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        except StorageRejected as exc:
            metrics.rejected.labels(reason="rejected_by_storage").inc(len(records))
            return JSONResponse({"error": "rejected_by_storage", "message": str(exc)[:2000]}, status_code=422)
        metrics.inserted.inc(len(result.inserted))
        metrics.duplicates.inc(len(result.duplicates))
        return JSONResponse({"inserted": len(result.inserted), "duplicates": len(result.duplicates)})

    async def live(_request: Request) -> Response:
        """The process is up."""
        return PlainTextResponse("ok")

    async def health(_request: Request) -> Response:
        """Upstream-compatible health (process up)."""
        return PlainTextResponse("ok")

    async def ready(_request: Request) -> Response:
        """Ready when ClickHouse answers."""
        if await asyncio.to_thread(store.ping):
            return PlainTextResponse("ok")
        return PlainTextResponse("clickhouse unreachable", status_code=503)

    async def metrics_endpoint(_request: Request) -> Response:
        """Prometheus exposition (also served on METRICS_PORT)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/", receive, methods=["POST"]),
            Route("/live", live, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.storage = store
    app.state.metrics = metrics
    app.state.batcher = batcher
    return app


async def _seal_forever(store: Storage, interval: int) -> None:
    """Seal rollups every `interval` seconds (0: never; another writer or a job seals instead)."""
    if not interval:
        return
    while True:
        await asyncio.to_thread(store.seal)
        await asyncio.sleep(interval)


def _raise(exc: BaseException) -> WriteResult:
    raise exc


def _split(result: WriteResult, groups: Sequence[Sequence[EventRecord]]) -> list[WriteResult | BaseException]:
    """Per-delivery view of a batch result: each newly stored id is credited to its first delivery."""
    fresh = set(result.inserted)
    out: list[WriteResult | BaseException] = []
    for group in groups:
        ins: list[str] = []
        dup: list[str] = []
        for rec in group:
            if rec.event_id in fresh:
                fresh.discard(rec.event_id)
                ins.append(rec.event_id)
            else:
                dup.append(rec.event_id)
        out.append(WriteResult(tuple(ins), tuple(dup)))
    return out
