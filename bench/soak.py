"""Soak: the whole audit pipeline at a fixed call rate for a long time; RSS and latency over time, zero loss.

Starts the pipeline parts (s3, kafka, clickhouse, ingest, processor, dispatcher, the sample MCP
server and its sidecars) through the Supervisor on free loopback ports, then sends `tools/call`
through the server-a sidecar at a fixed rate (allowed and denied calls, as in the fault tests)
for `--minutes`. Every `--sample` seconds it records, per component, the RSS of its whole process
group; the client-observed call latency (p50/p95/max of the interval); the audit backlog (answered
calls whose row is not yet in ClickHouse) and the broker store's object count. At the end it
drains, checks that every answered call has exactly one audit row, and writes a PNG plot and a
JSON file of every sample.

Pass criteria (exit 1 otherwise): zero lost and zero doubled events; no component's RSS grows by
more than `--rss-bound-mib` (default 48 MiB; `--clickhouse-bound-mib`, default 256, for the
embedded ClickHouse, whose caches grow with the data) between the end of the warm-up (the first
20 % of the run) and the end - a leak of a few hundred bytes per call would show at this length.
Run: `./dev soak -- --minutes 3` (Taskfile `soak`; default 30 minutes, 20 calls/s). Not in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from localstack.components import local_stack
from localstack.config import REPO_ROOT, Ports, StackConfig
from localstack.parts.clickhouse import clickhouse_url
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url

PARTS = {"s3", "kafka", "clickhouse", "ingest", "processor", "dispatcher", "sample_mcp", "sidecars"}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
ALICE = {"X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "workspace-agent", "X-MCP-Agent-Session": "sess-alice-a"}
BOB = {"X-MCP-Human-ID": "bob", "X-MCP-Agent-ID": "workspace-agent", "X-MCP-Agent-Session": "sess-bob-b"}
MIX: tuple[tuple[str, dict[str, str], str, dict[str, str]], ...] = (
    ("allow", ALICE, "search", {"query": "a"}), ("deny", ALICE, "delete_document", {"title": "welcome"}),
    ("allow", ALICE, "list_documents", {}), ("deny", BOB, "search", {"query": "a"}))


@dataclass
class Traffic:
    """Fixed-rate tools/call from one thread (ticks on a schedule, so a slow answer does not lower the rate)."""

    url: str
    rate: float
    prefix: str
    answered: dict[str, int] = field(default_factory=dict)  # rpc id -> HTTP status
    failed: int = 0
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, seconds)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        interval = 1.0 / self.rate
        t0 = time.monotonic()
        with httpx.Client(timeout=15) as client:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                delay = t0 + i * interval - time.monotonic()
                if delay > 0:
                    self.stop.wait(delay)
                _kind, who, tool, args = MIX[i % len(MIX)]
                rpc_id = f"{self.prefix}-{i}"
                body = {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call",
                        "params": {"name": tool, "arguments": args, "_meta": META}}
                headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                           "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool, **who}
                start = time.monotonic()
                try:
                    status = client.post(self.url, content=json.dumps(body), headers=headers).status_code
                except httpx.HTTPError:
                    self.failed += 1
                    continue
                self.latencies.append((start, time.monotonic() - start))
                self.answered[rpc_id] = status


def _group_rss(pid: int) -> int:
    """RSS of a component's process and all its descendants (tansu under its gate, Postgres backends)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _stored(cfg: StackConfig, prefix: str) -> dict[str, int]:
    ch = clickhouse_client_from_url(clickhouse_url(cfg))
    try:
        rows = ch.query("SELECT JSONExtractString(payload, 'rpc_id') AS rid, uniqExact(event_id) FROM mcp.events FINAL "
                        "WHERE startsWith(rid, {p:String}) GROUP BY rid", parameters={"p": prefix + "-"}).result_rows
    finally:
        ch.close()
    return {str(rid): int(n) for rid, n in rows}


def _store_objects(cfg: StackConfig) -> int:
    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
        return int(httpx.get(cfg.url("s3", "/_sentinel/stats"), timeout=5).json()["buckets"]["tansu"]["objects"])
    return -1


def _plot(samples: list[dict[str, Any]], components: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(11, 13), sharex=True)
    for name in components:
        axes[0].plot(minutes, [s["rss_mib"].get(name, 0) for s in samples], label=name)
    axes[0].set_ylabel("RSS (MiB)")
    axes[0].legend(fontsize=7, ncol=3)
    axes[1].plot(minutes, [s["latency_ms"]["p50"] for s in samples], label="p50")
    axes[1].plot(minutes, [s["latency_ms"]["p95"] for s in samples], label="p95")
    axes[1].plot(minutes, [s["latency_ms"]["max"] for s in samples], label="max", alpha=0.4)
    axes[1].set_ylabel("tools/call via sidecar (ms)")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=8)
    axes[2].plot(minutes, [s["audit_backlog"] for s in samples])
    axes[2].set_ylabel("answered, not yet in ClickHouse")
    axes[3].plot(minutes, [s["store_objects"] for s in samples])
    axes[3].set_ylabel("broker store objects")
    axes[3].set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print the summary; 0 when every pass criterion holds."""
    ap = argparse.ArgumentParser(prog="bench.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=20.0, help="tools/call per second (default 20)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples (default 10)")
    ap.add_argument("--rss-bound-mib", type=float, default=48.0)
    ap.add_argument("--clickhouse-bound-mib", type=float, default=256.0,
                    help="RSS growth bound for the embedded ClickHouse (its caches grow with the data)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / ".data" / "soak")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = Path(tempfile.mkdtemp(prefix="soak-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    samples: list[dict[str, Any]] = []
    with Supervisor(cfg) as sup:
        sup.start_all(local_stack(cfg, only=PARTS))
        components = list(sup.running)
        traffic = Traffic(cfg.url("sidecar_a", "/mcp"), args.rate, f"soak{stamp}")
        thread = threading.Thread(target=traffic.run, daemon=True)
        t0 = time.monotonic()
        thread.start()
        end = t0 + args.minutes * 60
        seen = 0
        try:
            while time.monotonic() < end:
                time.sleep(min(args.sample, max(0.0, end - time.monotonic())))
                now = time.monotonic()
                window = [lat for at, lat in traffic.latencies[seen:]]
                seen += len(window)
                window.sort()
                try:
                    stored = len(_stored(cfg, traffic.prefix))
                except Exception:  # ClickHouse busy: record the sample without it
                    stored = -1
                sample: dict[str, Any] = {
                    "t": now - t0,
                    "rss_mib": {n: _group_rss(r.process.pid) / 2**20 for n, r in sup.running.items()},
                    "latency_ms": {"p50": 1000 * statistics.median(window) if window else 0.0,
                                   "p95": 1000 * window[int(len(window) * 0.95)] if window else 0.0,
                                   "max": 1000 * window[-1] if window else 0.0, "calls": len(window)},
                    "audit_backlog": len(traffic.answered) - stored if stored >= 0 else -1,
                    "store_objects": _store_objects(cfg),
                }
                samples.append(sample)
                print(f"[{sample['t'] / 60:5.1f} min] calls {len(traffic.answered)} backlog {sample['audit_backlog']} "
                      f"p95 {sample['latency_ms']['p95']:.1f} ms store {sample['store_objects']} objects", flush=True)
        finally:
            traffic.stop.set()
            thread.join(30)
        answered = dict(traffic.answered)
        deadline = time.monotonic() + 180
        rows: dict[str, int] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                rows = _stored(cfg, traffic.prefix)
            if answered.keys() <= rows.keys():
                break
            time.sleep(1)
    lost = sorted(answered.keys() - rows.keys())
    doubled = sorted(r for r, n in rows.items() if n != 1)
    warm = [s for s in samples if s["t"] >= 0.2 * args.minutes * 60][:3] or samples[:1]
    tail = samples[-3:]
    growth = {n: statistics.median(s["rss_mib"][n] for s in tail) - statistics.median(s["rss_mib"][n] for s in warm)
              for n in components} if samples else {}
    bound = {n: args.clickhouse_bound_mib if n == "clickhouse" else args.rss_bound_mib for n in components}
    over = {n: round(g, 1) for n, g in growth.items() if g > bound[n]}
    lat = sorted(lat for _, lat in traffic.latencies)
    summary = {
        "minutes": args.minutes, "rate": args.rate, "calls_answered": len(answered), "calls_failed": traffic.failed,
        "lost": len(lost), "doubled": len(doubled), "rss_growth_mib": {n: round(g, 1) for n, g in growth.items()},
        "rss_bound_mib": bound, "rss_over_bound": over,
        "latency_ms": {"p50": round(1000 * statistics.median(lat), 2) if lat else None,
                       "p95": round(1000 * lat[int(len(lat) * 0.95)], 2) if lat else None,
                       "p99": round(1000 * lat[int(len(lat) * 0.99)], 2) if lat else None},
        "store_objects_max": max((s["store_objects"] for s in samples), default=-1),
    }
    png = args.out / f"soak-{stamp}.png"
    _plot(samples, components, png, f"soak {args.minutes:g} min at {args.rate:g} calls/s: "
          f"{len(answered)} calls, {len(lost)} lost, {len(doubled)} doubled")
    (args.out / f"soak-{stamp}.json").write_text(json.dumps({"summary": summary, "samples": samples}, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"plot: {png}")
    ok = not lost and not doubled and not over and answered
    if lost:
        print(f"LOST {len(lost)} events, e.g. {lost[:5]}")
    if over:
        print(f"RSS grew beyond its bound ({bound}): {over}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
