"""HTTP delivery of one partition's records: retries with backoff, batch bisection, dead-lettering.

Runs on the dispatcher's asyncio loop with one aiohttp session (a connection pool that does not
serialise concurrent POSTs, unlike a sync client shared by threads). `single` mode is Knative's
contract: one binary-mode CloudEvent per POST, in offset order. `batch` mode POSTs the records as
`application/cloudevents-batch+json` chunks (in offset order, one chunk in flight per partition).
A chunk the sink refuses with a permanent 4xx is bisected until the refused records are isolated:
those are dead-lettered alone, their neighbours delivered, and the partition's order is kept
because each half is settled before the next is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from localstack.kafka_source.mapping import to_http, to_structured
from localstack.kafka_source.metrics import DispatcherMetrics
from localstack.kafka_source.settings import DispatcherSettings
from mcp_sentinel import telemetry
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE

RESPONSE_KEEP = 1024  # bytes of a refusal kept for the dead-letter headers


@dataclass(frozen=True)
class Outcome:
    """How a delivery ended: delivered, or not with a reason (`response`: start of the sink's answer)."""

    delivered: bool
    reason: str = ""
    status: int = 0
    attempts: int = 0
    response: bytes = b""

    @property
    def refused(self) -> bool:
        """The sink answered a 4xx it will answer again (not 408/429): retrying cannot help."""
        return 400 <= self.status < 500 and self.status not in (408, 429)


DeadLetter = Callable[[Sequence[Any], Outcome], Awaitable[None]]


class Stopping(Exception):
    """The dispatcher is stopping mid-retry: abandon the poll uncommitted (it is redelivered)."""


class Delivery:
    """Delivers records to `settings.sink_url`; calls `dead_letter` for those that cannot be."""

    def __init__(
        self,
        settings: DispatcherSettings,
        http: aiohttp.ClientSession,
        metrics: DispatcherMetrics,
        tracer: Tracer,
        stopping: asyncio.Event,
        dead_letter: DeadLetter,
        *,
        record_spans: bool = True,
    ) -> None:
        self.s = settings
        self.http = http
        self.metrics = metrics
        self.tracer = tracer
        self.stopping = stopping
        self.dead_letter = dead_letter
        # Per-record spans in batch mode cost ~20 µs each; skip them when nothing exports spans.
        self.record_spans = record_spans

    # --- one HTTP exchange -----------------------------------------------------------------

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        skip = () if "content-type" in headers else ("Content-Type",)  # no octet-stream default
        if self.s.sink_auth_token:
            headers = {**headers, "authorization": f"Bearer {self.s.sink_auth_token}"}
        try:
            async with self.http.post(self.s.sink_url, data=body, headers=headers, skip_auto_headers=skip) as resp:
                answer = await resp.read()
                return resp.status, f"http_{resp.status}", answer[:RESPONSE_KEEP]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return 0, f"transport_error: {type(exc).__name__}: {exc}", b""

    async def _with_retries(self, send: Callable[[int], Awaitable[tuple[int, str, bytes]]]) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            status, reason, answer = await send(attempt)
            outcome = Outcome(200 <= status < 300, reason, status, attempt, answer)
            if outcome.delivered or outcome.refused:
                return outcome
            if attempt > self.s.retry:
                return Outcome(False, f"retries_exhausted: {reason}", status, attempt, answer)
            self.metrics.retried.labels("transport" if status == 0 else str(status)).inc()
            try:
                await asyncio.wait_for(self.stopping.wait(), self.s.backoff(attempt))
            except TimeoutError:
                continue
            raise Stopping

    # --- single mode (Knative's contract) ----------------------------------------------------

    async def one(self, record: Any) -> None:
        """Deliver one record as a binary-mode CloudEvent; dead-letter it if it cannot be."""
        headers, body = to_http(record, source_name=self.s.source_name, source_namespace=self.s.source_namespace)
        parent = telemetry.extract_kafka(record.headers)

        async def send(attempt: int) -> tuple[int, str, bytes]:
            with self.tracer.start_as_current_span(
                "kafka_source.deliver", context=parent, kind=SpanKind.CLIENT,
                attributes={"kafka.topic": record.topic, "kafka.partition": record.partition,
                            "kafka.offset": record.offset, "delivery.attempt": attempt},
            ) as span:  # fmt: skip
                send_headers = dict(headers)
                telemetry.inject_http(send_headers)
                result = await self._post(body, send_headers)
                _end_attrs(span, result[0], result[1])
                return result

        self.metrics.in_flight.inc()
        try:
            outcome = await self._with_retries(send)
        finally:
            self.metrics.in_flight.dec()
        if outcome.delivered:
            self.metrics.delivered.inc()
        else:
            await self.dead_letter([record], outcome)

    # --- batch mode ----------------------------------------------------------------------------

    def chunks(self, records: Sequence[Any]) -> list[list[tuple[Any, bytes]]]:
        """Records with their structured encodings, cut at `max_batch_events` / `max_batch_bytes`."""
        s = self.s
        out: list[list[tuple[Any, bytes]]] = []
        cur: list[tuple[Any, bytes]] = []
        size = 2
        for rec in records:
            frag = to_structured(rec, source_name=s.source_name, source_namespace=s.source_namespace)
            if cur and (len(cur) >= s.max_batch_events or size + len(frag) + 1 > s.max_batch_bytes):
                out.append(cur)
                cur, size = [], 2
            cur.append((rec, frag))
            size += len(frag) + 1
        if cur:
            out.append(cur)
        return out

    async def partition(self, records: Sequence[Any]) -> None:
        """Deliver one partition's records in offset order (the mode decides the wire format)."""
        if self.s.delivery_mode == "single":
            for rec in records:
                await self.one(rec)
            return
        for chunk in self.chunks(records):
            await self._batch(chunk)

    async def _batch(self, items: Sequence[tuple[Any, bytes]]) -> None:
        first = items[0][0]
        body = b"[" + b",".join(frag for _, frag in items) + b"]"
        # Structured mode may repeat binary-mode headers; the processor labels its spans with them.
        base = {"content-type": BATCH_CONTENT_TYPE, "ce-kafkatopic": first.topic,
                "ce-kafkapartition": str(first.partition), "ce-kafkaoffset": str(first.offset)}  # fmt: skip
        parent = telemetry.extract_kafka(first.headers)

        async def send(attempt: int) -> tuple[int, str, bytes]:
            spans = self._record_spans(items, attempt) if self.record_spans else []
            with self.tracer.start_as_current_span(
                "kafka_source.deliver_batch", context=parent, kind=SpanKind.CLIENT,
                attributes={"kafka.topic": first.topic, "kafka.partition": first.partition,
                            "kafka.first_offset": first.offset, "kafka.last_offset": items[-1][0].offset,
                            "batch.size": len(items), "delivery.attempt": attempt},
            ) as span:  # fmt: skip
                headers = dict(base)
                telemetry.inject_http(headers)
                result = await self._post(body, headers)
                for sp in (span, *spans):
                    _end_attrs(sp, result[0], result[1])
            for sp in spans:
                sp.end()
            return result

        self.metrics.in_flight.inc(len(items))
        try:
            outcome = await self._with_retries(send)
        finally:
            self.metrics.in_flight.dec(len(items))
        self.metrics.batch_size.observe(len(items))
        if outcome.delivered:
            self.metrics.delivered.inc(len(items))
        elif outcome.refused and len(items) > 1:
            # Some record(s) in here are refused: settle each half in order to find them.
            self.metrics.bisections.inc()
            mid = len(items) // 2
            await self._batch(items[:mid])
            await self._batch(items[mid:])
        else:
            # Refused alone, or retries exhausted: every record of the chunk had its attempts.
            await self.dead_letter([rec for rec, _ in items], outcome)

    def _record_spans(self, items: Sequence[tuple[Any, bytes]], attempt: int) -> list[Span]:
        # One `kafka_source.deliver` span per record, a child of the record's own trace context,
        # so every event's trace shows the dispatcher hop as in single mode.
        spans = []
        for rec, _ in items:
            ctx: Context = telemetry.extract_kafka(rec.headers)
            spans.append(self.tracer.start_span(
                "kafka_source.deliver", context=ctx, kind=SpanKind.CLIENT,
                attributes={"kafka.topic": rec.topic, "kafka.partition": rec.partition, "kafka.offset": rec.offset,
                            "delivery.attempt": attempt, "batch.size": len(items)},
            ))  # fmt: skip
        return spans


def _end_attrs(span: Span, status: int, reason: str) -> None:
    span.set_attribute("http.response.status_code", status)
    if not 200 <= status < 300:
        span.set_status(Status(StatusCode.ERROR, reason))


__all__ = ["Delivery", "Outcome", "Stopping"]
