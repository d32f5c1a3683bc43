"""Processor → ClickHouse throughput for CloudEvents batch deliveries, against a raw-insert baseline.

Starts the embedded ClickHouse and the processor as the local stack does (free ports, temp dir),
then in the same run:
* baseline: clickhouse-connect `insert()` of the same rows straight into a fresh events table;
* processor: concurrent `application/cloudevents-batch+json` POSTs (validation, dedup check,
  micro-batching, insert, acknowledgement).
* reference: the same rows inserted by an in-process chdb (`INSERT … FROM INFILE … FORMAT
  RowBinary`, in a child process), i.e. the engine without HTTP, to show whether the embedded
  server itself caps the baseline.
Each round interleaves baseline and processor over `SLICES` slices of the same rows (the first
side alternates, the server's merges are waited out before each), so a shared machine's load
drift hits both alike; the per-round ratios and their median are the figure to quote (the best
and spread of each side are printed too). Target: processor ≥ 50k events/s and ≥ 0.8× the baseline.
`python -m bench.processor_throughput BATCH_BUSY_WAIT_MS=0` passes settings to the processor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from localstack.config import Ports, StackConfig
from localstack.parts import clickhouse as clickhouse_part
from localstack.parts import processor as processor_part
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.events import EventRecord, encode_rowbinary
from mcp_sentinel.storage.migrations import migrate
from mcp_sentinel.storage.schema import INSERT_COLUMNS, MIGRATIONS

BATCH = 1_000
CONCURRENCY = 8
# The baseline inserts BATCH * CONCURRENCY rows per INSERT: a slice is whole INSERTs of it.
SLICE = 6 * BATCH * CONCURRENCY
SLICES = 2
ROUND_EVENTS = SLICE * SLICES
ROUNDS = 3


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


def baseline(url: str, events: list[dict[str, object]]) -> tuple[float, float]:
    """(events/s, CPU seconds this process spent in the timed inserts)."""
    db = "bench_raw"
    admin = clickhouse_client_from_url(url)
    migrate(admin, db)
    client = clickhouse_client_from_url(url, db)
    rows = [
        [e["id"], datetime.fromisoformat(str(e["time"])), "", e["source"], e["type"], json.dumps(e["data"])]
        for e in events
    ]
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(rows), BATCH * CONCURRENCY):
        client.insert(f"{db}.events", rows[i : i + BATCH * CONCURRENCY], column_names=list(INSERT_COLUMNS))
    return len(rows) / (time.perf_counter() - t0), time.process_time() - c0


# The processor accepts only the event source: the benchmark presents the local dispatcher's token.
AUTH = {"authorization": f"Bearer {StackConfig().processor_delivery_token}"}


async def through_processor(url: str, events: list[dict[str, object]]) -> tuple[float, float]:
    """(events/s, CPU seconds this process spent sending them); the bodies are encoded before timing."""
    bodies = [json.dumps(events[i : i + BATCH]).encode() for i in range(0, len(events), BATCH)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    headers = {"content-type": "application/cloudevents-batch+json", **AUTH}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            r = await client.post("/", content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"processor answered {r.status_code}: {r.text[:500]}")

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return len(events) / (time.perf_counter() - t0), time.process_time() - c0


async def single_deliveries(url: str, total: int, concurrency: int) -> float:
    """Single-event binary deliveries/s (what a KafkaSource sends), `concurrency` in flight.

    aiohttp, not httpx: httpx's async pool itself collapses to ~200 req/s at 64 connections here.
    """
    import aiohttp

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        for i in range(n):
            headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": str(uuid.uuid4()),
                       "ce-source": "mcp-gateway", "ce-type": "mcp.request", "ce-time": datetime.now(UTC).isoformat(),
                       "ce-partition": str(i % 3), "ce-offset": str(i), **AUTH}  # fmt: skip
            async with session.post(url + "/", headers=headers, data=b'{"server":"s","decision":"allow"}') as r:
                if r.status != 200:
                    raise RuntimeError(f"processor answered {r.status}: {(await r.text())[:500]}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session, total // concurrency) for _ in range(concurrency)))
        return (total // concurrency * concurrency) / (time.perf_counter() - t0)


def chdb_reference(total: int) -> float:
    """Events/s of an in-process chdb inserting the same kind of rows as RowBinary (no HTTP)."""
    import chdb

    events = make_events(total)
    records = [
        EventRecord(str(e["id"]), datetime.fromisoformat(str(e["time"])), "", str(e["source"]), str(e["type"]),
                    json.dumps(e["data"]))
        for e in events
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        conn = chdb.connect(str(Path(tmp) / "db"))  # type: ignore[no-untyped-call]
        conn.query("CREATE DATABASE IF NOT EXISTS ref")
        conn.query(MIGRATIONS[0].statements[0].format(db="ref", retention_days=90))
        cols = ", ".join(INSERT_COLUMNS)
        t0 = time.perf_counter()
        for i in range(0, total, BATCH * CONCURRENCY):
            path = Path(tmp) / f"block-{i}.bin"
            path.write_bytes(encode_rowbinary(records[i : i + BATCH * CONCURRENCY]))
            conn.query(f"INSERT INTO ref.events ({cols}) FROM INFILE '{path}' FORMAT RowBinary")
        rate = total / (time.perf_counter() - t0)
        conn.close()
    return rate


def _cpu(pids: list[int]) -> float:
    """User+system CPU seconds of these processes so far."""
    import psutil

    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def _batch_totals(url: str) -> tuple[float, float]:
    """(events, inserts) so far from the processor's `processor_batch_size` histogram."""
    text = httpx.get(url + "/metrics", timeout=10).text
    pairs = (line.split() for line in text.splitlines() if line.startswith("processor_batch_size_"))
    values = {p[0]: float(p[1]) for p in pairs}
    return values.get("processor_batch_size_sum", 0.0), values.get("processor_batch_size_count", 0.0)


def _quiesce(url: str, deadline_s: float = 60.0) -> None:
    """Wait until the server runs no merges, so neither measurement pays for the other's parts."""
    client = clickhouse_client_from_url(url)
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop and client.query("SELECT count() FROM system.merges").result_rows[0][0]:
        time.sleep(0.2)
    client.close()


def _spread(xs: list[float]) -> str:
    return f"best {max(xs):>9,.0f}  spread {min(xs):,.0f}–{max(xs):,.0f}  ({', '.join(f'{x:,.0f}' for x in xs)})"


def main() -> None:
    """Run every measurement ROUNDS times and print the comparison."""
    if sys.argv[1:2] == ["--chdb-reference"]:
        print(chdb_reference(int(sys.argv[2])), flush=True)
        os._exit(0)  # skip chdb's global teardown, which can crash at interpreter exit
    # `NAME=value` arguments go to the processor's environment (A/B of its settings).
    extra_env = dict(arg.split("=", 1) for arg in sys.argv[1:] if "=" in arg)
    raws: list[float] = []
    procs: list[float] = []
    refs: list[float] = []
    batch_sizes: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = StackConfig(data_dir=Path(tmp), ports=Ports.free())
        with Supervisor(cfg) as sup:
            sup.start_all(clickhouse_part.components(cfg))
            (proc,) = processor_part.components(cfg)
            sup.start(dataclasses.replace(proc, env={**proc.env, "CLICKHOUSE_DB": "bench_proc", **extra_env}))
            ch_url = clickhouse_part.clickhouse_url(cfg)
            warm = make_events(BATCH)
            asyncio.run(through_processor(cfg.url("processor"), warm))  # connect + migrate outside timing
            proc_pids = [sup.running["processor"].process.pid]
            ch_pids = [sup.running["clickhouse"].process.pid]
            # CPU of each process on the measured path (the driver is this process: what it spends
            # competes for the same two cores).
            cpu: dict[str, list[float]] = {"baseline: driver (clickhouse-connect)": [], "baseline: clickhouse": [],
                                           "processor: driver (httpx)": [], "processor": [],
                                           "processor: clickhouse": []}  # fmt: skip
            round_cpu: dict[str, float] = {}
            round_time = {"baseline": 0.0, "processor": 0.0}
            batch_totals = [0.0, 0.0]

            def run_baseline(events: list[dict[str, object]]) -> None:
                _quiesce(ch_url)
                c0 = _cpu(ch_pids)
                rate, driver_cpu = baseline(ch_url, events)
                round_time["baseline"] += len(events) / rate
                round_cpu["baseline: clickhouse"] += _cpu(ch_pids) - c0
                round_cpu["baseline: driver (clickhouse-connect)"] += driver_cpu

            def run_processor(events: list[dict[str, object]]) -> None:
                _quiesce(ch_url)
                p0, c0 = _cpu(proc_pids), _cpu(ch_pids)
                b0 = _batch_totals(cfg.url("processor"))
                rate, driver_cpu = asyncio.run(through_processor(cfg.url("processor"), events))
                round_time["processor"] += len(events) / rate
                round_cpu["processor: driver (httpx)"] += driver_cpu
                b1 = _batch_totals(cfg.url("processor"))
                batch_totals[0] += b1[0] - b0[0]
                batch_totals[1] += b1[1] - b0[1]
                round_cpu["processor"] += _cpu(proc_pids) - p0
                round_cpu["processor: clickhouse"] += _cpu(ch_pids) - c0

            for _ in range(ROUNDS):
                round_cpu.update(dict.fromkeys(cpu, 0.0))
                round_time.update(baseline=0.0, processor=0.0)
                batch_totals[:] = [0.0, 0.0]
                # Slices alternate which side goes first, so the neighbours' load drift and
                # background merges land on both sides alike. Each slice starts the processor
                # idle (its first delivery is written alone): 48 deliveries amortise that ramp.
                for i in range(SLICES):
                    events = make_events(SLICE)
                    for run in (run_baseline, run_processor) if i % 2 == 0 else (run_processor, run_baseline):
                        run(events)
                raws.append(ROUND_EVENTS / round_time["baseline"])
                procs.append(ROUND_EVENTS / round_time["processor"])
                batch_sizes.append(batch_totals[0] / max(batch_totals[1], 1))
                for k, v in round_cpu.items():
                    cpu[k].append(v / ROUND_EVENTS * 1e6)
                # A child process: chdb allows one engine per process and the server holds its own.
                out = subprocess.run([sys.executable, "-m", "bench.processor_throughput", "--chdb-reference",
                                      str(ROUND_EVENTS)], capture_output=True, text=True, check=True)  # fmt: skip
                refs.append(float(out.stdout.strip().splitlines()[-1]))
            # Ordered KafkaSource with 3 partitions ≈ 3 in flight; unordered ≈ MAX_IN_FLIGHT.
            singles = {c: asyncio.run(single_deliveries(cfg.url("processor"), 3000 if c > 3 else 300, c))
                       for c in (3, 128)}  # fmt: skip
            stored = clickhouse_client_from_url(ch_url, "bench_proc").query(
                "SELECT count() FROM events FINAL").result_rows[0][0]  # fmt: skip
    print(f"processor environment overrides: {extra_env or 'none'}")
    print(f"events: {ROUND_EVENTS} per round ({SLICES} alternating slices) in batches of {BATCH}, "
          f"{CONCURRENCY} concurrent deliveries, {ROUNDS} rounds")  # fmt: skip
    print(f"in-process chdb RowBinary insert (engine, no HTTP) : {_spread(refs)} events/s")
    print(f"baseline raw clickhouse-connect insert via server  : {_spread(raws)} events/s")
    print(f"processor (CloudEvents batch → ClickHouse)         : {_spread(procs)} events/s")
    print("processor, single-event deliveries: " + ", ".join(f"{c} in flight {r:,.0f}/s" for c, r in singles.items()))
    print("processor events per INSERT (mean per round): " + ", ".join(f"{b:,.0f}" for b in batch_sizes))
    print("CPU µs per event (min over rounds): " + ", ".join(f"{k} {min(v):.1f}" for k, v in cpu.items()))
    # On a saturated machine throughput follows CPU per event: this is the ratio that predicts.
    path = {side: statistics.median(sum(cpu[k][r] for k in cpu if k.startswith(side)) for r in range(ROUNDS))
            for side in ("baseline", "processor")}  # fmt: skip
    print(f"CPU µs per event along each path (median): baseline {path['baseline']:.1f}, processor "
          f"{path['processor']:.1f}; their ratio {path['baseline'] / path['processor']:.2f}")  # fmt: skip
    per_round = [p / b for p, b in zip(procs, raws, strict=True)]
    print(f"ratio processor/baseline per round: {', '.join(f'{x:.2f}' for x in per_round)}   "
          f"median {statistics.median(per_round):.2f}")  # fmt: skip
    print(f"ratio processor/baseline (bests): {max(procs) / max(raws):.2f}   baseline/engine: "
          f"{max(raws) / max(refs):.2f}   processor/engine: {max(procs) / max(refs):.2f}")  # fmt: skip
    print(f"target processor >= 50,000 events/s: {'met' if max(procs) >= 50_000 else 'NOT met'} (best round)")
    print(f"rows stored by processor: {stored} (expected {ROUNDS * ROUND_EVENTS + BATCH + 300 + 3000 - 3000 % 128})")


if __name__ == "__main__":
    main()
