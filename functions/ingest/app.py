"""The ingest function: `POST /events` → validated envelopes → Kafka (CloudEvents Kafka binary binding).

Accepts the seed's plain JSON envelope and CloudEvents structured, binary and batch modes. A
request is all-or-nothing: any invalid event rejects the whole request (400 naming every bad
field) and nothing is produced; 202 is returned only once the broker acknowledged every record.

The app is a plain Starlette app: ingest uses none of FastAPI's features (no OpenAPI, no
dependency injection, no model validation — the codec validates), and `import fastapi` alone
costs about 250 ms of a cold start here against about 80 ms for Starlette (bench/import_time.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.ingest.auth import Authenticator
from functions.ingest.binding import binding_errors, stamp_team
from functions.ingest.body import CLOSE, read_limited
from functions.ingest.producer import EventProducer, ProduceError
from functions.ingest.settings import IngestSettings
from mcp_sentinel import telemetry
from mcp_sentinel.audit_payload import payload_errors
from mcp_sentinel.cloudevents_binary import KafkaRecord, to_kafka_binary
from mcp_sentinel.cloudevents_codec import DecodedEvent, decode_http
from mcp_sentinel.envelope import EnvelopeError, FieldError
from mcp_sentinel.kafka.net import broker_reachable

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

SERVICE_NAME = "mcp-sentinel-ingest"


class IngestMetrics:
    """Prometheus families of the ingest function, registered on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter("ingest_events_accepted_total", "Events acknowledged by Kafka", ["mode"],
                                registry=registry)
        self.rejected = Counter("ingest_requests_rejected_total", "Requests refused, by reason", ["reason"],
                                registry=registry)
        self.produce_seconds = Histogram(
            "ingest_produce_duration_seconds", "Time from first send to the broker's ack of the whole request",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry,
        )
        self.team_restamped = Counter(
            "ingest_events_team_restamped_total",
            "Events whose claimed team_id differed from their credential's team (stored with the credential's)",
            registry=registry,
        )
        self.batch_events = Histogram("ingest_request_events", "Events per accepted request",
                                      buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000), registry=registry)


class ServerSpan:
    """ASGI middleware: every request runs inside an `http.server` span continuing the caller's W3C trace.

    Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which runs the app in an anyio task
    group per request: that costs time on every event and imports anyio's asyncio backend (about
    40 ms) inside the first request of a cold process.
    """

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        ctx = telemetry.extract_http(headers)
        with self.tracer.start_as_current_span("http.server", context=ctx, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", scope["method"])
            span.set_attribute("url.path", scope["path"])

            async def send_and_record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self.app(scope, receive, send_and_record)


def _error(status: int, error: str, message: str = "", **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error": error}
    if message:
        body["message"] = message
    body.update(extra)
    return JSONResponse(body, status_code=status)


def create_app(
    settings: IngestSettings,
    *,
    producer: EventProducer | None = None,
    tracer_provider: TracerProvider | None = None,
    registry: CollectorRegistry | None = None,
    authenticator: Authenticator | None = None,
    event_spans: bool = True,
) -> Starlette:
    """Build the ingest ASGI app; `registry` receives its metrics (served on the metrics port).

    `event_spans=False` (what `python -m functions.ingest` passes when no OTLP endpoint is set)
    skips the per-event `kafka.produce` spans, which nobody would receive: every record still
    carries a W3C `traceparent` that continues its trace with a fresh span id.
    """
    registry = registry if registry is not None else CollectorRegistry()
    provider = tracer_provider or telemetry.setup_tracing(SERVICE_NAME, {})
    tracer = provider.get_tracer("mcp_sentinel.ingest")
    metrics = IngestMetrics(registry)
    auth = authenticator or Authenticator(settings)
    prod = producer or EventProducer(settings.brokers, timeout_ms=settings.produce_timeout_ms,
                                     linger_ms=settings.linger_ms, idempotent=settings.enable_idempotence)
    brokers = list(settings.brokers)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Connect (and import the Kafka client) while the platform hands the first request over,
        # not inside it; failures are logged and the first event connects on demand.
        warm = asyncio.create_task(prod.warm(), name="kafka-warm")
        yield
        warm.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await warm
        await prod.close()

    async def live(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def ready(_request: Request) -> JSONResponse:
        if await asyncio.to_thread(broker_reachable, brokers, 2.0):
            return JSONResponse({"ok": True})
        return _error(503, "kafka_unavailable", "no Kafka broker reachable at " + ",".join(brokers))

    def encode(events: tuple[DecodedEvent, ...], baggage: str | None) -> tuple[list[KafkaRecord], list[Any]]:
        records, spans = [], []
        parent = trace.get_current_span().get_span_context()
        for ev in events:
            # A batch element carries its originating request's trace; otherwise continue ours.
            ctx = telemetry.extract_http({"traceparent": ev.traceparent, "tracestate": ev.tracestate or ""}) \
                if ev.traceparent else trace.set_span_in_context(trace.NonRecordingSpan(parent))
            span = tracer.start_span("kafka.produce", context=ctx, kind=SpanKind.PRODUCER,
                                     attributes={"kafka.topic": settings.topic, "cloudevents.event_id": ev.envelope.id})
            w3c = telemetry.inject_http(context=trace.set_span_in_context(span))
            env = ev.envelope.with_trace_id(telemetry.trace_id_hex(span))
            records.append(to_kafka_binary(env, traceparent=w3c.get("traceparent"), tracestate=w3c.get("tracestate"),
                                           baggage=baggage))
            spans.append(span)
        return records, spans

    def encode_cheap(events: tuple[DecodedEvent, ...], baggage: str | None) -> list[KafkaRecord]:
        # Same trace structure as `encode`, without SDK spans: a fresh span id under the event's
        # own traceparent (already validated by the decoder), else under the request's span.
        parent = trace.get_current_span().get_span_context()
        request_trace = format(parent.trace_id, "032x") if parent.is_valid else ""
        request_flags = format(parent.trace_flags, "02x") if parent.is_valid else "01"
        getrandbits = random.getrandbits
        records = []
        for ev in events:
            if ev.traceparent:
                tp = ev.traceparent.strip().lower()
                trace_id, flags, state = tp[3:35], tp[53:55], ev.tracestate
            else:
                trace_id, flags, state = request_trace or format(getrandbits(128) or 1, "032x"), request_flags, None
            span_id = format(getrandbits(64) or 1, "016x")
            # The record's trace id travels in its traceparent, so the envelope needs no copy.
            records.append(to_kafka_binary(ev.envelope, traceparent=f"00-{trace_id}-{span_id}-{flags}",
                                           tracestate=state, baggage=baggage))
        return records

    async def post_events(request: Request) -> JSONResponse:
        result = auth.check(request.headers)
        if not result.ok:
            metrics.rejected.labels(result.error).inc()
            return _error(result.status, result.error, result.message)
        body = await read_limited(request, settings.max_body_bytes)
        if body is None:
            metrics.rejected.labels("payload_too_large").inc()
            refused = _error(413, "payload_too_large", f"body exceeds {settings.max_body_bytes} bytes",
                             limit=settings.max_body_bytes)
            refused.headers.update(CLOSE)  # the client may still be sending: see functions/ingest/body.py
            return refused
        try:
            decoded = decode_http(request.headers, body)
        except EnvelopeError as exc:
            not_json = any(e.field == "$" and e.reason.startswith("body is not valid JSON") for e in exc.errors)
            reason = "invalid_json" if not_json else "invalid_event"
            metrics.rejected.labels(reason).inc()
            return _error(400, reason, str(exc), errors=[e.to_dict() for e in exc.errors])
        batch = decoded.mode == "batch"
        mistyped = [
            FieldError(f"[{i}].payload.{name}" if batch else f"payload.{name}", reason)
            for i, ev in enumerate(decoded.events) for name, reason in payload_errors(ev.envelope.payload)
        ]  # fmt: skip
        if mistyped:
            # A known audit field of the wrong type would be stored as "" by its materialised column.
            metrics.rejected.labels("invalid_event").inc()
            return _error(400, "invalid_event", "payload fields have the wrong type",
                          errors=[e.to_dict() for e in mistyped])
        forged = [
            FieldError(f"[{i}].source" if decoded.mode == "batch" else "source",
                       "this credential may not write events for this source")
            for i, ev in enumerate(decoded.events) if not result.source_allowed(ev.envelope.source)
        ]
        if forged:
            metrics.rejected.labels("source_not_allowed").inc()
            return _error(403, "source_not_allowed", "credential is bound to other sources",
                          errors=[e.to_dict() for e in forged])
        events = decoded.events
        if result.binding is not None:
            mismatched = binding_errors(events, result.binding, batch=decoded.mode == "batch")
            if mismatched:
                metrics.rejected.labels("binding_mismatch").inc()
                return _error(403, "binding_mismatch", "credential is bound to another server or namespace",
                              errors=[e.to_dict() for e in mismatched])
            events, restamped = stamp_team(events, result.binding)
            if restamped:
                metrics.team_restamped.inc(restamped)

        if event_spans:
            records, spans = encode(events, request.headers.get("baggage"))
        else:
            records, spans = encode_cheap(events, request.headers.get("baggage")), []
        t0 = time.perf_counter()
        try:
            await prod.send_all(settings.topic, records)
        except ProduceError as exc:
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                span.end()
            metrics.rejected.labels("kafka_unavailable").inc()
            return _error(503, "kafka_unavailable", "Kafka did not acknowledge the events; retry later")
        metrics.produce_seconds.observe(time.perf_counter() - t0)
        for span in spans:
            span.end()
        n = len(records)
        metrics.accepted.labels(decoded.mode).inc(n)
        metrics.batch_events.observe(n)
        if decoded.mode == "batch":
            return JSONResponse({"ok": True, "accepted": n}, status_code=202)
        return JSONResponse({"ok": True}, status_code=202)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        # Unknown paths and methods answer in the same JSON shape as every other error.
        assert isinstance(exc, HTTPException)
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"ok": False, "error": reason, "message": exc.detail}, status_code=exc.status_code,
                            headers=exc.headers)

    app = Starlette(
        routes=[
            Route("/live", live, methods=["GET"]),
            Route("/health", live, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/events", post_events, methods=["POST"]),
        ],
        middleware=[Middleware(ServerSpan, tracer=tracer)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.producer = prod
    return app
