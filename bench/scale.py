"""`bench:scale`: every API read path over N synthetic events, rollups vs the raw table, same run.

Starts the embedded ClickHouse (or uses `--url`), migrates a database, generates N events inside
ClickHouse (bench/scale_data.py), seals the rollups (what the processor does every minute), then
times each read path through the API's own query functions: the rollup path (`EventQueries`) and
the baseline, the same function on the raw table only (`EventQueries(use_rollups=False)`, i.e.
`events FINAL` as before the rollups). Paths that never used aggregates (event search, pages) have
one implementation and are timed once. Reports insert rate, bytes on disk per event, p50/p95.

    python -m bench.scale [--events 10000000] [--days 30] [--reps 9] [--raw-reps 3]
    python -m bench.scale --url http://127.0.0.1:8123 --database s10m --skip-generate
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.scale_data import generate
from mcp_sentinel.storage import rollups
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.migrations import migrate
from mcp_sentinel.storage.queries import EventFilter, EventQueries
from mcp_sentinel.storage.usage import UsageQuery, usage


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p * (len(xs) - 1)))]


def _time(fn: Callable[[], Any], reps: int, *, warm: bool = True) -> list[float]:
    if warm:
        fn()  # caches, first-query set-up
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _sample(client: Any, db: str) -> dict[str, str]:
    row = client.query(
        f"SELECT session_id, human_id, agent_id, trace_id, server, namespace FROM {db}.events "
        "WHERE session_id != '' AND timestamp < now64(3) - INTERVAL 3 DAY ORDER BY timestamp DESC LIMIT 1"
    ).result_rows[0]
    return dict(zip(("session_id", "human_id", "agent_id", "trace_id", "server", "namespace"), row, strict=True))


def read_paths(client: Any, db: str) -> list[tuple[str, Callable[[EventQueries], Any], bool]]:
    """(name, call, aggregate?) for every API read path; aggregates have a rollup and a raw form."""
    s = _sample(client, db)
    team = "team-3"
    paths: list[tuple[str, Callable[[EventQueries], Any], bool]] = [
        ("usage 30 d, admin", lambda q: usage(q, UsageQuery(window_days=30)), True),
        ("usage 7 d, one team (scoped)",
         lambda q: usage(q, UsageQuery(window_days=7, team_ids=(team,), scoped=True)), True),
        ("usage 1 d, admin (hourly series)", lambda q: usage(q, UsageQuery(window_days=1)), True),
        ("usage 30 d, server + deny filter",
         lambda q: usage(q, UsageQuery(window_days=30, server=s["server"], decision="deny")), True),
        ("usage 30 d, tool filter", lambda q: usage(q, UsageQuery(window_days=30, tool_name="tool-3")), True),
        ("dashboard_summary()", lambda q: q.dashboard_summary(), True),
        ("count()", lambda q: q.count(), True),
        ("sources()", lambda q: q.sources(), True),
        ("event_types()", lambda q: q.event_types(), True),
        ("events() newest 100", lambda q: q.events(), False),
    ]  # fmt: skip
    paths += [
        (f"events({name}=…)", _search(EventFilter(**{name: s[name]})), False)  # type: ignore[arg-type]
        for name in ("session_id", "human_id", "agent_id", "trace_id")
    ]
    paths += [
        ("events(decision=deny)", lambda q: q.events(EventFilter(decision="deny")), False),
        # Sparse: the rarest human's denials, ~40 a day at 10M, so no recent window holds a page.
        (
            "events(human_id=rarest, decision=deny)",
            lambda q: q.events(EventFilter(human_id="human-299@example.com", decision="deny")),
            False,
        ),
        ("events(team_id=…, tool_name=…)", lambda q: q.events(EventFilter(team_id=team, tool_name="tool-3")), False),
        ("server_events(ns, server)", lambda q: q.server_events(s["namespace"], s["server"]), False),
        ("events() cursor page 2", lambda q: q.events(cursor=_cursor(q)), False),
        ("events() offset 10,000", lambda q: q.events(offset=10_000), False),
    ]
    return paths


def _cursor(q: EventQueries) -> Any:
    from mcp_sentinel.storage.queries import Cursor

    token = q.events().next_cursor
    return Cursor.decode(token) if token else None


def _search(f: EventFilter) -> Callable[[EventQueries], Any]:
    return lambda q: q.events(f)


def _bind(call: Callable[[EventQueries], Any], q: EventQueries) -> Callable[[], Any]:
    return lambda: call(q)


def _bytes(client: Any, db: str) -> dict[str, int]:
    rows = client.query(
        "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE database = {db:String} AND active GROUP BY table",
        parameters={"db": db},
    ).result_rows
    return {str(t): int(b) for t, b in rows}


def run(url: str, db: str, events: int, days: int, reps: int, raw_reps: int, skip_generate: bool) -> str:
    admin = clickhouse_client_from_url(url, send_receive_timeout=3600)
    lines: list[str] = []
    t0 = time.perf_counter()
    migrate(admin, db)
    lines.append(f"migrate (incl. backfill of existing events): {time.perf_counter() - t0:.1f} s")
    client = clickhouse_client_from_url(url, db, send_receive_timeout=3600)
    if not skip_generate:
        t0 = time.perf_counter()
        generate(client, db, events, days=days)
        dt = time.perf_counter() - t0
        lines.append(f"generated {events:,} events in {dt:.1f} s: {events / dt:,.0f} events/s (INSERT … SELECT)")
    t0 = time.perf_counter()
    sealed = rollups.seal_pending(client, db, settle=timedelta(0))
    lines.append(f"sealed {sealed} hour/day buckets in {time.perf_counter() - t0:.1f} s")
    total = int(client.query("SELECT count() FROM events").result_rows[0][0])
    size = _bytes(client, db)
    per = ", ".join(f"{t} {b / max(total, 1):.1f}" for t, b in sorted(size.items()) if b)
    lines.append(f"rows {total:,}; bytes on disk per event: {per}")
    lines.append(f"load average before reads: {os.getloadavg()[0]:.1f} (2 cores)")
    fast, raw = EventQueries(client, db), EventQueries(client, db, use_rollups=False)
    lines += [
        "",
        "| read path | rollup p50 / p95 ms | raw-table baseline p50 / p95 ms | speed-up (p50) |",
        "|---|---|---|---|",
    ]
    for name, call, aggregate in read_paths(client, db):
        f = _time(_bind(call, fast), reps)
        if aggregate and raw_reps > 0:
            r = _time(_bind(call, raw), raw_reps, warm=raw_reps > 1)
            fm, rm = statistics.median(f), statistics.median(r)
            lines.append(
                f"| {name} | {fm:,.0f} / {_pct(f, 0.95):,.0f} | {rm:,.0f} / {_pct(r, 0.95):,.0f} | ×{rm / fm:.1f} |"
            )
        else:
            base = "not run" if aggregate else "same query"
            lines.append(f"| {name} | {statistics.median(f):,.0f} / {_pct(f, 0.95):,.0f} | {base} | — |")
        print(lines[-1], flush=True)
    lines.append(f"\nload average after reads: {os.getloadavg()[0]:.1f}")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, start a server when none is given, run, print the report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--raw-reps", type=int, default=3, help="0 skips the raw-table baseline")
    ap.add_argument("--url", help="an existing ClickHouse (default: start the embedded one in a temp dir)")
    ap.add_argument("--database", default="bench_scale")
    ap.add_argument("--skip-generate", action="store_true", help="use the events already in --database")
    a = ap.parse_args()
    if a.url:
        print(run(a.url, a.database, a.events, a.days, a.reps, a.raw_reps, a.skip_generate))
        return
    from localstack.config import Ports, StackConfig
    from localstack.parts import clickhouse as clickhouse_part
    from localstack.supervisor import Supervisor

    with tempfile.TemporaryDirectory() as tmp:
        cfg = StackConfig(data_dir=Path(tmp), ports=Ports.free())
        with Supervisor(cfg) as sup:
            sup.start_all(clickhouse_part.components(cfg))
            print(run(clickhouse_part.clickhouse_url(cfg), a.database, a.events, a.days, a.reps, a.raw_reps, False))


if __name__ == "__main__":
    main()
