"""End-to-end audit latency: event created → queryable in ClickHouse, through the real pipeline.

Starts the local-stack parts s3, kafka, clickhouse, ingest, processor and dispatcher with the
Supervisor (free ports, temp dir), then creates events at a steady rate (default 1,000/s for
10 s) and ships them to ingest the way the sidecar's `AuditSender` does:
`application/cloudevents-batch+json` POSTs of at most `AUDIT_BATCH_SIZE` (500) events, one in
flight, the next leaving as soon as the previous was answered with every event created meanwhile
(`--ship-ms N` ships once per N ms instead). A poller queries ClickHouse every `--poll-ms` for
the run's events and records when each id first becomes visible. Reported per round:
p50/p90/p99/max latency from creation and from the POST that carried the event, the count
stored (exactly once, `FINAL`) and lost.
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

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.supervisor import Supervisor
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, encode_batch
from mcp_sentinel.envelope import Envelope
from mcp_sentinel.storage.client import clickhouse_client_from_url
from sidecar.settings import SidecarSettings

PARTS = {"s3", "kafka", "clickhouse", "ingest", "processor", "dispatcher"}


@dataclass
class Round:
    """What one round sent and saw."""

    source: str
    created: dict[str, float] = field(default_factory=dict)  # id -> monotonic creation time
    posted: dict[str, float] = field(default_factory=dict)  # id -> monotonic time its POST started
    seen: dict[str, float] = field(default_factory=dict)  # id -> monotonic time first visible
    # Wall-clock stage marks (same host clock as ClickHouse's now64): ingest answered, row inserted.
    acked: dict[str, float] = field(default_factory=dict)  # id -> epoch seconds its POST got 202
    post_rtt: dict[str, float] = field(default_factory=dict)  # id -> seconds its POST took
    inserted: dict[str, float] = field(default_factory=dict)  # id -> epoch seconds of `ingested_at`
    seen_wall: dict[str, float] = field(default_factory=dict)  # id -> epoch seconds first visible
    post_errors: list[str] = field(default_factory=list)
    counters: dict[str, float] = field(default_factory=dict)  # processor/dispatcher metric deltas


def _envelope(i: int, source: str, now: datetime) -> Envelope:
    payload = {
        "server": f"srv-{i % 20}", "namespace": "bench", "team_id": "team-a", "human_id": f"h{i % 50}",
        "agent_id": "agent", "session_id": f"s{i % 200}", "decision": "allow" if i % 10 else "deny",
        "tool_name": f"tool{i % 30}", "reason": "allowed", "rpc_method": "tools/call", "status": 200,
    }  # fmt: skip
    return Envelope(str(uuid.uuid4()), now, uuid.uuid4().hex, source, "mcp.request", payload)


def send(url: str, key: str, rnd: Round, rate: int, seconds: float, ship_ms: float, max_batch: int) -> None:
    """Create events at `rate`/s and ship them (≤ `max_batch` per POST, one POST at a time).

    `ship_ms` 0 is the sidecar's `AuditSender`: it is woken by every append, so the next POST
    leaves as soon as the previous one was answered, carrying every event spooled meanwhile.
    A positive `ship_ms` ships what accumulated once per interval instead.
    """
    headers = {"content-type": BATCH_CONTENT_TYPE, "x-api-key": key}
    total = int(rate * seconds)
    t0 = time.monotonic()
    wall0 = datetime.now(UTC)
    made = 0
    with httpx.Client(timeout=30) as client:
        while made < total:
            now = time.monotonic()
            due = min(total, int((now - t0) * rate))
            if due == made:  # nothing spooled yet: wait for the next event, as the sender's wake-up does
                time.sleep(max(0.0, t0 + (made + 1) / rate - now))
                continue
            pending: list[Envelope] = []
            while made < due:
                # Events "happen" evenly; creation time is when they would have been spooled.
                at = t0 + made / rate
                env = _envelope(made, rnd.source, wall0 + timedelta(seconds=at - t0))
                rnd.created[env.id] = at
                pending.append(env)
                made += 1
            for s in range(0, len(pending), max_batch):
                chunk = pending[s : s + max_batch]
                body = encode_batch(chunk)
                start = time.monotonic()
                for env in chunk:
                    rnd.posted[env.id] = start
                try:
                    r = client.post(url, content=body, headers=headers)
                    if r.status_code != 202:
                        rnd.post_errors.append(f"{r.status_code}: {r.text[:200]}")
                    else:
                        acked, rtt = time.time(), time.monotonic() - start
                        for env in chunk:
                            rnd.acked[env.id] = acked
                            rnd.post_rtt[env.id] = rtt
                except httpx.HTTPError as exc:
                    rnd.post_errors.append(repr(exc))
            if ship_ms > 0:
                time.sleep(max(0.0, now + ship_ms / 1000 - time.monotonic()))


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
            seen_at, seen_wall = time.monotonic(), time.time()
            newest = since
            for event_id, ingested in rows:
                ts = ingested if ingested.tzinfo else ingested.replace(tzinfo=UTC)
                if str(event_id) not in rnd.seen:
                    rnd.seen[str(event_id)] = seen_at
                    rnd.seen_wall[str(event_id)] = seen_wall
                    rnd.inserted[str(event_id)] = ts.timestamp()
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


def scrape(url: str) -> dict[str, float]:
    """Unlabelled-or-summed sample values of a Prometheus text page (name → value)."""
    out: dict[str, float] = {}
    try:
        text = httpx.get(url, timeout=10).text
    except httpx.HTTPError:
        return out
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def pipeline_counters(cfg: StackConfig) -> dict[str, float]:
    """The processor's and dispatcher's counters that explain where the time goes."""
    return {**scrape(cfg.url("processor", "/metrics")), **scrape(cfg.url("dispatcher_metrics", "/metrics"))}


def run_round(
    cfg: StackConfig, rate: int, seconds: float, ship_ms: float, poll_ms: float, drain: float, max_batch: int
) -> Round:
    """One measured round; waits up to `drain` seconds after the last send for stragglers."""
    rnd = Round(source=f"bench-e2e-{uuid.uuid4().hex[:8]}")
    stop = threading.Event()
    ch_url = cfg.url("clickhouse_http")
    poller = threading.Thread(target=poll, args=(ch_url, rnd, stop, poll_ms), daemon=True)
    poller.start()
    before = pipeline_counters(cfg)
    send(cfg.url("ingest", "/events"), cfg.ingest_api_key, rnd, rate, seconds, ship_ms, max_batch)
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline and len(rnd.seen) < len(rnd.created):
        time.sleep(0.1)
    stop.set()
    poller.join(30)
    after = pipeline_counters(cfg)
    rnd.counters = {k: after[k] - before.get(k, 0.0) for k in after}
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
    staged = [e for e in ids if e in rnd.acked]
    stages = (
        ("POST → ingest 202       ", [rnd.post_rtt[e] for e in staged]),
        ("202 → inserted (Kafka, dispatcher, processor)", [rnd.inserted[e] - rnd.acked[e] for e in staged]),
        ("inserted → seen by poll ", [rnd.seen_wall[e] - rnd.inserted[e] for e in staged]),
    )
    for name, xs in stages:
        if xs:
            print(f"    stage {name}: p50 {pct(xs, 0.5):7.1f} ms  p99 {pct(xs, 0.99):7.1f} ms")
    c = rnd.counters
    inserts, posts = c.get("processor_insert_latency_seconds_count", 0), c.get("dispatcher_batch_records_count", 0)
    if inserts and posts:
        print(f"    processor: {inserts:.0f} inserts, mean {c['processor_batch_size_sum'] / inserts:.0f} events, "
              f"mean insert {c['processor_insert_latency_seconds_sum'] / inserts * 1000:.1f} ms; dispatcher: "
              f"{posts:.0f} batch POSTs, mean {c['dispatcher_batch_records_sum'] / posts:.0f} records")  # fmt: skip
    return pct(from_created, 0.5), pct(from_created, 0.99)


def main() -> None:
    """Start the pipeline once, run the rounds, print each and the best/spread."""
    ap = argparse.ArgumentParser(prog="python -m bench.e2e_latency", description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=1000, help="events per second (default 1000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="sending time per round (default 10)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ship-ms", type=float, default=0.0,
                    help="fixed shipping interval; 0 (default) ships like the sidecar: next POST right after the last")
    ap.add_argument("--ship-batch", type=int, default=SidecarSettings.audit_batch_size,
                    help=f"events per POST at most (default: the sidecar's AUDIT_BATCH_SIZE, "
                         f"{SidecarSettings.audit_batch_size})")  # fmt: skip
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
            run_round(cfg, 50, 1.0, args.ship_ms, args.poll_ms, args.drain, args.ship_batch)
            shipping = f"every {args.ship_ms:g} ms" if args.ship_ms > 0 else "as the sidecar (one POST in flight)"
            print(f"rate {args.rate}/s for {args.seconds:g} s, batches ≤ {args.ship_batch} {shipping}, "
                  f"poll every {args.poll_ms:g} ms; dispatcher DELIVERY_ORDER="
                  f"{dispatcher_env.get('DELIVERY_ORDER', 'ordered')} "
                  f"MAX_IN_FLIGHT={dispatcher_env.get('MAX_IN_FLIGHT', 32)} "
                  f"DELIVERY_MODE={dispatcher_env.get('DELIVERY_MODE', 'batch')}")  # fmt: skip
            results = []
            for i in range(args.rounds):
                rnd = run_round(cfg, args.rate, args.seconds, args.ship_ms, args.poll_ms, args.drain, args.ship_batch)
                results.append(report(i + 1, rnd, cfg))
    p99s = [r[1] for r in results]
    p50s = [r[0] for r in results]
    print(f"p50 best {min(p50s):.1f} ms (spread {min(p50s):.1f}–{max(p50s):.1f}); "
          f"p99 best {min(p99s):.1f} ms (spread {min(p99s):.1f}–{max(p99s):.1f}); "
          f"target p99 ≤ 1000 ms: {'met' if min(p99s) <= 1000 else 'NOT met'} "
          f"(median round {statistics.median(p99s):.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
