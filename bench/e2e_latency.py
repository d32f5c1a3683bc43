"""End-to-end audit latency: event created → queryable in ClickHouse, through the real pipeline.

Starts the local-stack parts s3, kafka, clickhouse, ingest, processor and dispatcher with the
Supervisor (free ports, temp dir), then creates events at a steady rate (default 1,000/s for
10 s) and ships them to ingest the way the sidecar does: `application/cloudevents-batch+json`
POSTs of at most 100 events, one every `--ship-ms` (each batch holds the events created since
the last one). A poller queries ClickHouse every `--poll-ms` for the run's events and records
when each id first becomes visible. Reported per round: p50/p90/p99/max latency from creation
and from the POST that carried the event, the count stored (exactly once, `FINAL`) and lost.
Targets: p99 ≤ 1 s at 1,000 events/s, zero lost.

Run: `python -m bench.e2e_latency [--rate 1000] [--seconds 10] [--rounds 2]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, encode_batch
from mcp_sentinel.envelope import Envelope
from mcp_sentinel.stack.components import local_stack
from mcp_sentinel.stack.config import Ports, StackConfig
from mcp_sentinel.stack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url

PARTS = {"s3", "kafka", "clickhouse", "ingest", "processor", "dispatcher"}
MAX_BATCH = 100


@dataclass
class Round:
    """What one round sent and saw."""

    source: str
    created: dict[str, float] = field(default_factory=dict)  # id -> monotonic creation time
    posted: dict[str, float] = field(default_factory=dict)  # id -> monotonic time its POST started
    seen: dict[str, float] = field(default_factory=dict)  # id -> monotonic time first visible
    post_errors: list[str] = field(default_factory=list)


def _envelope(i: int, source: str, now: datetime) -> Envelope:
    payload = {
        "server": f"srv-{i % 20}", "namespace": "bench", "team_id": "team-a", "human_id": f"h{i % 50}",
        "agent_id": "agent", "session_id": f"s{i % 200}", "decision": "allow" if i % 10 else "deny",
        "tool_name": f"tool{i % 30}", "reason": "allowed", "rpc_method": "tools/call", "status": 200,
    }  # fmt: skip
    return Envelope(str(uuid.uuid4()), now, uuid.uuid4().hex, source, "mcp.request", payload)


def send(url: str, key: str, rnd: Round, rate: int, seconds: float, ship_ms: float) -> None:
    """Create events at `rate`/s and ship what accumulated every `ship_ms` (≤ MAX_BATCH per POST)."""
    headers = {"content-type": BATCH_CONTENT_TYPE, "x-api-key": key}
    total = int(rate * seconds)
    t0 = time.monotonic()
    wall0 = datetime.now(UTC)
    made = 0
    with httpx.Client(timeout=30) as client:
        while made < total:
            now = time.monotonic()
            due = min(total, int((now - t0) * rate))
            pending: list[Envelope] = []
            while made < due:
                # Events "happen" evenly; creation time is when they would have been spooled.
                at = t0 + made / rate
                env = _envelope(made, rnd.source, wall0 + timedelta(seconds=at - t0))
                rnd.created[env.id] = at
                pending.append(env)
                made += 1
            for s in range(0, len(pending), MAX_BATCH):
                chunk = pending[s : s + MAX_BATCH]
                body = encode_batch(chunk)
                start = time.monotonic()
                for env in chunk:
                    rnd.posted[env.id] = start
                try:
                    r = client.post(url, content=body, headers=headers)
                    if r.status_code != 202:
                        rnd.post_errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    rnd.post_errors.append(repr(exc))
            next_tick = now + ship_ms / 1000
            time.sleep(max(0.0, next_tick - time.monotonic()))


def poll(ch_url: str, rnd: Round, stop: threading.Event, poll_ms: float) -> None:
    """Record when each of the round's ids first shows up in a query."""
    client = clickhouse_client_from_url(ch_url, "mcp")
    since = datetime.now(UTC) - timedelta(seconds=5)
    try:
        while not stop.is_set():
            t_query = time.monotonic()
            rows = client.query(
                "SELECT event_id, ingested_at FROM events "
                "WHERE source = {s:String} AND ingested_at >= {t:DateTime64(3)}",
                parameters={"s": rnd.source, "t": since},
            ).result_rows
            seen_at = time.monotonic()
            newest = since
            for event_id, ingested in rows:
                rnd.seen.setdefault(str(event_id), seen_at)
                ts = ingested if ingested.tzinfo else ingested.replace(tzinfo=UTC)
                newest = max(newest, ts)
            # Rows stamped just before `newest` may commit after this query: look back 2 s.
            since = max(since, newest - timedelta(seconds=2))
            stop.wait(max(0.0, poll_ms / 1000 - (time.monotonic() - t_query)))
    finally:
        client.close()


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of values, in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))] * 1000


def run_round(cfg: StackConfig, rate: int, seconds: float, ship_ms: float, poll_ms: float, drain: float) -> Round:
    """One measured round; waits up to `drain` seconds after the last send for stragglers."""
    rnd = Round(source=f"bench-e2e-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    ch_url = cfg.url("clickhouse_http")
    poller = threading.Thread(target=poll, args=(ch_url, rnd, stop, poll_ms), daemon=True)
    poller.start()
    send(cfg.url("ingest", "/events"), cfg.ingest_api_key, rnd, rate, seconds, ship_ms)
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline and len(rnd.seen) < len(rnd.created):
        time.sleep(0.1)
    stop.set()
    poller.join(30)
    return rnd


def report(i: int, rnd: Round, cfg: StackConfig) -> tuple[float, float]:
    """Print one round; returns (p50, p99) from creation in ms."""
    ids = [e for e in rnd.created if e in rnd.seen]
    from_created = [rnd.seen[e] - rnd.created[e] for e in ids]
    from_post = [rnd.seen[e] - rnd.posted[e] for e in ids]
    client = clickhouse_client_from_url(cfg.url("clickhouse_http"), "mcp")
    stored = client.query(
        "SELECT count(), uniqExact(event_id) FROM events FINAL WHERE source = {s:String}", parameters={"s": rnd.source}
    ).result_rows[0]
    client.close()
    lost = len(rnd.created) - len(ids)
    print(f"round {i}: sent {len(rnd.created)}, stored {stored[0]} rows / {stored[1]} ids (FINAL), "
          f"not visible by the end of the drain {lost}, "
          f"ingest errors {len(rnd.post_errors)}")  # fmt: skip
    for msg in rnd.post_errors[:3]:
        print(f"  ingest error: {msg}")
    if not ids:
        return float("inf"), float("inf")
    for name, xs in (("created → queryable", from_created), ("POST → queryable   ", from_post)):
        print(f"  {name}: p50 {pct(xs, 0.5):7.1f} ms  p90 {pct(xs, 0.9):7.1f} ms  p99 {pct(xs, 0.99):7.1f} ms  "
              f"max {max(xs) * 1000:7.1f} ms")  # fmt: skip
    return pct(from_created, 0.5), pct(from_created, 0.99)


def main() -> None:
    """Start the pipeline once, run the rounds, print each and the best/spread."""
    ap = argparse.ArgumentParser(prog="python -m bench.e2e_latency", description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=1000, help="events per second (default 1000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="sending time per round (default 10)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ship-ms", type=float, default=50.0, help="sidecar shipping interval (default 50 ms)")
    ap.add_argument("--poll-ms", type=float, default=25.0, help="ClickHouse poll interval (default 25 ms)")
    ap.add_argument("--drain", type=float, default=30.0, help="max wait for the last events (default 30 s)")
    ap.add_argument(
        "--order",
        choices=("stack", "ordered", "unordered"),
        default="stack",
        help="dispatcher DELIVERY_ORDER (default: whatever the stack part sets)",
    )
    ap.add_argument("--in-flight", type=int, default=0, help="dispatcher MAX_IN_FLIGHT (default: the part's)")
    ap.add_argument(
        "--mode",
        choices=("stack", "batch", "single"),
        default="stack",
        help="dispatcher DELIVERY_MODE (default: whatever the stack part sets)",
    )
    ap.add_argument("--max-batch", type=int, default=0, help="dispatcher MAX_BATCH_EVENTS (default: its own)")
    ap.add_argument("--dispatcher-env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra dispatcher variable, e.g. KAFKA_FETCH_MAX_WAIT_MS=20 (repeatable)")
    ap.add_argument("--batch-wait-ms", type=int, default=-1, help="processor BATCH_MAX_WAIT_MS (default: its own)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = StackConfig(data_dir=Path(tmp), ports=Ports.free())
        with Supervisor(cfg) as sup:
            t0 = time.monotonic()
            comps = local_stack(cfg, only=PARTS)
            overrides = {"DELIVERY_ORDER": args.order if args.order != "stack" else None,
                         "MAX_IN_FLIGHT": str(args.in_flight) if args.in_flight else None,
                         "DELIVERY_MODE": args.mode if args.mode != "stack" else None,
                         "MAX_BATCH_EVENTS": str(args.max_batch) if args.max_batch else None}  # fmt: skip
            extra = {k: v for k, v in overrides.items() if v is not None}
            extra.update(kv.split("=", 1) for kv in args.dispatcher_env)
            comps = [dataclasses.replace(c, env={**c.env, **extra}) if c.name == "dispatcher" else c for c in comps]
            if args.batch_wait_ms >= 0:
                wait = {"BATCH_MAX_WAIT_MS": str(args.batch_wait_ms)}
                comps = [dataclasses.replace(c, env={**c.env, **wait}) if c.name == "processor" else c for c in comps]
            sup.start_all(comps)
            dispatcher_env = next(c.env for c in comps if c.name == "dispatcher")
            ready = cfg.url("processor", "/ready")
            while httpx.get(ready, timeout=10).status_code != 200:
                time.sleep(0.2)
            print(f"pipeline {sorted(PARTS)} up in {time.monotonic() - t0:.1f} s")
            # Warm-up: first delivery pays connection set-up and consumer-group join.
            run_round(cfg, 50, 1.0, args.ship_ms, args.poll_ms, args.drain)
            print(f"rate {args.rate}/s for {args.seconds:g} s, batches ≤ {MAX_BATCH} every {args.ship_ms:g} ms, "
                  f"poll every {args.poll_ms:g} ms; dispatcher DELIVERY_ORDER="
                  f"{dispatcher_env.get('DELIVERY_ORDER', 'ordered')} "
                  f"MAX_IN_FLIGHT={dispatcher_env.get('MAX_IN_FLIGHT', 32)} "
                  f"DELIVERY_MODE={dispatcher_env.get('DELIVERY_MODE', 'batch')}")  # fmt: skip
            results = []
            for i in range(args.rounds):
                rnd = run_round(cfg, args.rate, args.seconds, args.ship_ms, args.poll_ms, args.drain)
                results.append(report(i + 1, rnd, cfg))
    p99s = [r[1] for r in results]
    p50s = [r[0] for r in results]
    print(f"p50 best {min(p50s):.1f} ms (spread {min(p50s):.1f}–{max(p50s):.1f}); "
          f"p99 best {min(p99s):.1f} ms (spread {min(p99s):.1f}–{max(p99s):.1f}); "
          f"target p99 ≤ 1000 ms: {'met' if min(p99s) <= 1000 else 'NOT met'} "
          f"(median round {statistics.median(p99s):.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
