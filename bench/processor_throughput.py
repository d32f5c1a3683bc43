"""Processor → ClickHouse throughput for CloudEvents batch deliveries, against a raw-insert baseline.

Starts the embedded ClickHouse and the processor as the local stack does (free ports, temp dir),
then in the same run:
* baseline: clickhouse-connect `insert()` of the same rows straight into a fresh events table;
* processor: concurrent `application/cloudevents-batch+json` POSTs (validation, dedup check,
  micro-batching, insert, acknowledgement).
Prints events/s for both and the ratio. Target: processor ≥ 50k events/s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mcp_sentinel.stack.config import Ports, StackConfig
from mcp_sentinel.stack.parts import clickhouse as clickhouse_part
from mcp_sentinel.stack.parts import processor as processor_part
from mcp_sentinel.stack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.migrations import migrate
from mcp_sentinel.storage.schema import INSERT_COLUMNS

TOTAL = 100_000
BATCH = 1_000
CONCURRENCY = 8


def make_events(n: int) -> list[dict[str, object]]:
    now = datetime.now(UTC).isoformat()
    return [
        {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "mcp-gateway", "type": "mcp.request", "time": now,
         "traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01", "datacontenttype": "application/json",
         "data": {"server": f"srv-{i % 20}", "namespace": "ns", "team_id": "t", "human_id": f"h{i % 100}",
                  "agent_id": "a", "session_id": f"s{i % 500}", "decision": "allow", "tool_name": f"tool{i % 30}",
                  "reason": "allowed", "rpc_method": "tools/call", "status": 200, "latency_ms": 3}}
        for i in range(n)
    ]  # fmt: skip


def baseline(url: str, events: list[dict[str, object]]) -> float:
    db = "bench_raw"
    admin = clickhouse_client_from_url(url)
    migrate(admin, db)
    client = clickhouse_client_from_url(url, db)
    rows = [
        [e["id"], datetime.fromisoformat(str(e["time"])), "", e["source"], e["type"], json.dumps(e["data"])]
        for e in events
    ]
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH * CONCURRENCY):
        client.insert(f"{db}.events", rows[i : i + BATCH * CONCURRENCY], column_names=list(INSERT_COLUMNS))
    return len(rows) / (time.perf_counter() - t0)


async def through_processor(url: str, events: list[dict[str, object]]) -> float:
    bodies = [json.dumps(events[i : i + BATCH]).encode() for i in range(0, len(events), BATCH)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"content-type": "application/cloudevents-batch+json"}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            r = await client.post("/", content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"processor answered {r.status_code}: {r.text[:500]}")

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return len(events) / (time.perf_counter() - t0)


def main() -> None:
    """Run both measurements and print the comparison."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = StackConfig(data_dir=Path(tmp), ports=Ports.free())
        with Supervisor(cfg) as sup:
            sup.start_all(clickhouse_part.components(cfg))
            (proc,) = processor_part.components(cfg)
            sup.start(dataclasses.replace(proc, env={**proc.env, "CLICKHOUSE_DB": "bench_proc"}))
            ch_url = clickhouse_part.clickhouse_url(cfg)
            warm = make_events(BATCH)
            asyncio.run(through_processor(cfg.url("processor"), warm))  # connect + migrate outside timing
            events = make_events(TOTAL)
            raw = baseline(ch_url, events)
            processed = asyncio.run(through_processor(cfg.url("processor"), events))
            stored = clickhouse_client_from_url(ch_url, "bench_proc").query(
                "SELECT count() FROM events FINAL").result_rows[0][0]  # fmt: skip
    print(f"events: {TOTAL} in batches of {BATCH}, {CONCURRENCY} concurrent deliveries")
    print(f"baseline raw clickhouse-connect insert: {raw:,.0f} events/s")
    print(f"processor (CloudEvents batch → ClickHouse): {processed:,.0f} events/s")
    print(f"ratio processor/baseline: {processed / raw:.2f}  (target: processor >= 50,000 events/s: "
          f"{'met' if processed >= 50_000 else 'NOT met'})")  # fmt: skip
    print(f"rows stored by processor: {stored} (expected {TOTAL + BATCH})")


if __name__ == "__main__":
    main()
