"""Processor spans with an SDK tracer provider (in-process app, real embedded ClickHouse)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from functions.processor.app import create_app
from functions.processor.settings import ProcessorSettings
from mcp_sentinel.storage.client import ClickHouseSettings

TRACES = [uuid.uuid4().hex for _ in range(3)]


def event(i: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"tr-{uuid.uuid4()}", "source": "mcp-gateway", "type": "mcp.request",
            "time": datetime.now(UTC).isoformat(), "traceparent": f"00-{TRACES[i]}-00f067aa0ba902b7-01",
            "data": {"server": "srv", "namespace": "ns"}}  # fmt: skip


async def test_each_event_continues_its_own_trace_and_the_batch_links_them(
    clickhouse_url: str, ch_database: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = dataclasses.replace(
        ProcessorSettings(allow_unauthenticated=True),  # delivery auth: test_delivery_auth.py
        clickhouse=ClickHouseSettings(url=clickhouse_url, database=ch_database),
    )
    app = create_app(settings, tracer_provider=provider)
    app.state.batcher.start()  # ASGITransport does not run the lifespan
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://processor") as client:
            r = await client.post("/", content=json.dumps([event(i) for i in range(3)]),
                                  headers={"content-type": "application/cloudevents-batch+json",
                                           "ce-partition": "1"})  # fmt: skip
        assert r.status_code == 200 and r.json() == {"inserted": 3, "duplicates": 0}
    finally:
        await app.state.batcher.stop()
    spans = exporter.get_finished_spans()
    consume = [s for s in spans if s.name == "kafka.consume"]
    assert sorted(f"{s.context.trace_id:032x}" for s in consume) == sorted(TRACES)
    assert all(s.parent is not None and s.parent.span_id == 0x00F067AA0BA902B7 for s in consume)
    [batch] = [s for s in spans if s.name == "clickhouse.insert_batch"]
    assert f"{batch.context.trace_id:032x}" == TRACES[0] and batch.attributes["batch.size"] == 3
    assert sorted(f"{link.context.trace_id:032x}" for link in batch.links) == sorted(TRACES[1:])
    per_event = [s for s in spans if s.name == "clickhouse.insert_event"]
    assert sorted(f"{s.context.trace_id:032x}" for s in per_event) == sorted(TRACES)
