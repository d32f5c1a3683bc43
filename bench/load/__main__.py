"""Load through the whole pipeline: `python -m bench.load [--ci]` (Taskfile `load`, `load:ci`).

Starts the audit pipeline (s3, kafka, clickhouse, ingest, processor, dispatcher, sample MCP server,
sidecars) on free loopback ports, then drives `tools/call` (Alice's `search`) at fixed rates and at
saturation, first straight at the sample server (the baseline, measured in the same run) and then
through the server-a sidecar. Reports:

* latency p50/p99 per phase and the sidecar's added latency against the direct baseline;
* saturation throughput (calls/s) through the sidecar vs direct;
* sidecar RSS and CPU seconds per call (psutil);
* end-to-end audit latency (ClickHouse `ingested_at - timestamp` of each row, both stamped on this machine);
* lost events: answered calls without exactly one audit row (must be 0).

Writes `.data/load/load-<stamp>.json` and `.png` (and `latest.*`). Exit code 1 when events were lost
or when the sidecar regressed by more than `--tolerance` (30%) against the stored baseline
(`bench/load/baseline.json`, recorded on this machine with `--save-baseline`). The comparison is of
same-run ratios — sidecar throughput ÷ direct throughput and sidecar p99 ÷ direct p99 at each rate —
so a busier or faster machine moves both sides and does not fake a regression. A proxy doing two
HTTP exchanges per call can never be within 30% of the direct upstream itself, so the direct run is
the normaliser, not the bar.
Bounded: every phase has a duration and a call cap; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from localstack.components import local_stack
from localstack.config import REPO_ROOT, Ports, StackConfig
from localstack.parts.clickhouse import clickhouse_url
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url

PIPELINE = {"s3", "kafka", "clickhouse", "ingest", "processor", "dispatcher", "sample_mcp", "sidecars"}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "search",
    "X-MCP-Human-ID": "alice",
    "X-MCP-Agent-ID": "workspace-agent",
    "X-MCP-Agent-Session": "sess-alice-a",
}


@dataclass
class Phase:
    """One measured phase."""

    target: str  # "direct" or "sidecar"
    mode: str  # "rate" or "saturation"
    rate: int  # requested calls/s (0 for saturation)
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    sidecar_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "target": self.target,
            "mode": self.mode,
            "rate": self.rate,
            "calls": len(lat),
            "errors": self.errors,
            "throughput": round(len(lat) / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(_pct(lat, 50), 3),
            "p99_ms": round(_pct(lat, 99), 3),
            "sidecar_cpu_ms_per_call": round(1000 * self.sidecar_cpu_s / len(lat), 3) if lat else 0.0,
        }


def _pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def _body(rpc_id: str) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": rpc_id,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "audit"}, "_meta": META},
        }
    ).encode()


async def _one(session: aiohttp.ClientSession, url: str, phase: Phase, rpc_id: str) -> None:
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=_body(rpc_id), headers=HEADERS) as resp:
            await resp.read()
            ok = resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    if ok:
        phase.latencies_ms.append((time.perf_counter() - t0) * 1000)
        phase.ids.append(rpc_id)
    else:
        phase.errors += 1


async def _run_phase(url: str, phase: Phase, prefix: str, concurrency: int, cap: int) -> None:
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        t0 = time.perf_counter()
        deadline = t0 + phase.seconds
        if phase.mode == "rate":
            tasks = []
            interval = 1.0 / phase.rate
            i = 0
            while time.perf_counter() < deadline and i < cap:
                tasks.append(asyncio.create_task(_one(session, url, phase, f"{prefix}-{i}")))
                i += 1
                await asyncio.sleep(max(0.0, t0 + i * interval - time.perf_counter()))
            await asyncio.gather(*tasks)
        else:
            counter = iter(range(cap))

            async def worker() -> None:
                for i in counter:
                    if time.perf_counter() >= deadline:
                        return
                    await _one(session, url, phase, f"{prefix}-{i}")

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        phase.elapsed = time.perf_counter() - t0


def _audit(cfg: StackConfig, prefix: str, expected: set[str], timeout: float) -> tuple[dict[str, int], list[float]]:
    """rpc id → row count and the audit latencies (ms) for rows of this run, once all expected ids arrived."""
    ch = clickhouse_client_from_url(clickhouse_url(cfg))
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    lat: list[float] = []
    try:
        while True:
            rows = ch.query(
                "SELECT JSONExtractString(payload, 'rpc_id') AS rid, count(), "
                "max(dateDiff('millisecond', timestamp, ingested_at)) "
                "FROM mcp.events FINAL WHERE startsWith(rid, {p:String}) GROUP BY rid",
                parameters={"p": prefix},
            ).result_rows
            counts = {r[0]: int(r[1]) for r in rows}
            lat = [float(r[2]) for r in rows]
            if expected <= counts.keys() or time.monotonic() > deadline:
                return counts, lat
            time.sleep(0.5)
    finally:
        ch.close()


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = report["phases"]
    rates = sorted({p["rate"] for p in phases if p["mode"] == "rate"})
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.8))
    width = 0.2
    for j, (target, color) in enumerate((("direct", "#7f7f7f"), ("sidecar", "#1f77b4"))):
        sel = {p["rate"]: p for p in phases if p["mode"] == "rate" and p["target"] == target}
        xs = [i + (j - 0.5) * 2 * width for i in range(len(rates))]
        ax1.bar([x - width / 2 for x in xs], [sel[r]["p50_ms"] for r in rates], width, color=color, alpha=0.55,
                label=f"{target} p50")
        ax1.bar([x + width / 2 for x in xs], [sel[r]["p99_ms"] for r in rates], width, color=color,
                label=f"{target} p99")
    ax1.set_xticks(range(len(rates)), [f"{r}/s" for r in rates])
    ax1.set_ylabel("latency (ms)")
    ax1.set_title("tools/call latency at fixed rates")
    ax1.legend(fontsize=8)
    sat = {p["target"]: p for p in phases if p["mode"] == "saturation"}
    ax2.bar(["direct", "sidecar"], [sat["direct"]["throughput"], sat["sidecar"]["throughput"]],
            color=["#7f7f7f", "#1f77b4"])
    ax2.set_ylabel("calls/s")
    ax2.set_title(f"saturation throughput ({report['concurrency']} in flight)")
    for i, t in enumerate(("direct", "sidecar")):
        ax2.annotate(f"{sat[t]['throughput']:.0f}", (i, sat[t]["throughput"]), ha="center", va="bottom")
    audit = report["audit"]
    ax3.axis("off")
    lines = [
        f"sidecar added p50: {report['added_ms']['p50']:.2f} ms",
        f"sidecar added p99: {report['added_ms']['p99']:.2f} ms",
        f"sidecar RSS: {report['sidecar']['rss_mb']:.0f} MB",
        f"sidecar CPU/call: {report['sidecar']['cpu_ms_per_call']:.2f} ms",
        f"audit e2e p50/p99: {audit['latency_p50_ms']:.0f} / {audit['latency_p99_ms']:.0f} ms",
        f"audited calls: {audit['answered']}   lost: {audit['lost']}   doubled: {audit['doubled']}",
        f"regression check (±{int(report['tolerance'] * 100)}%): {'PASS' if report['ok'] else 'FAIL'}",
    ]
    ax3.text(0.0, 0.95, "\n".join(lines), va="top", family="monospace", fontsize=10)
    ax3.set_title("pipeline")
    fig.suptitle(f"mcp-sentinel load ({report['stamp']}; same-run ratios vs the stored baseline)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the load phases and write the report; returns the process exit code."""
    ap = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    ap.add_argument("--ci", action="store_true", help="small bounded form (≈ 1 min incl. start-up)")
    ap.add_argument("--rates", default="", help="fixed rates, calls/s, comma separated")
    ap.add_argument("--seconds", type=float, default=0.0, help="duration of each phase")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-calls", type=int, default=20000, help="cap per phase")
    ap.add_argument("--tolerance", type=float, default=0.30)
    ap.add_argument("--out", default=str(REPO_ROOT / ".data" / "load"))
    ap.add_argument("--baseline", default=str(Path(__file__).with_name("baseline.json")))
    ap.add_argument("--save-baseline", action="store_true", help="record this run's ratios as the baseline")
    args = ap.parse_args(argv)
    rates = [int(r) for r in (args.rates or ("25,50" if args.ci else "50,100,200")).split(",")]
    seconds = args.seconds or (3.0 if args.ci else 10.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    data = Path(tempfile.mkdtemp(prefix="sentinel-load-"))
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    print(f"starting the pipeline under {data} ...", flush=True)
    with Supervisor(cfg) as sup:
        sup.start_all(local_stack(cfg, only=PIPELINE))
        sidecar = psutil.Process(sup.running["sidecar-server-a"].process.pid)
        urls = {"direct": cfg.url("sample_mcp", "/mcp"), "sidecar": cfg.url("sidecar_a", "/mcp")}
        phases: list[Phase] = []
        run_prefix = f"load{stamp}"
        asyncio.run(_run_phase(urls["sidecar"], Phase("sidecar", "rate", 20, 1.0), f"warm{stamp}", 4, 50))
        plan = [(t, "rate", r) for r in rates for t in ("direct", "sidecar")]
        plan += [("direct", "saturation", 0), ("sidecar", "saturation", 0)]
        for i, (target, mode, rate) in enumerate(plan):
            phase = Phase(target, mode, rate, seconds)
            cpu0 = sum(sidecar.cpu_times()[:2])
            asyncio.run(_run_phase(urls[target], phase, f"{run_prefix}-{i}", args.concurrency, args.max_calls))
            phase.sidecar_cpu_s = sum(sidecar.cpu_times()[:2]) - cpu0
            phases.append(phase)
            s = phase.summary()
            print(f"{target:8} {mode:10} rate={rate:<4} calls={s['calls']:<6} err={s['errors']:<3} "
                  f"thr={s['throughput']:>7}/s p50={s['p50_ms']:.2f}ms p99={s['p99_ms']:.2f}ms", flush=True)
        rss_mb = sidecar.memory_info().rss / 2**20
        audited = {rid for p in phases if p.target == "sidecar" for rid in p.ids}
        counts, audit_lat = _audit(cfg, run_prefix, audited, timeout=120)
    lost = sorted(audited - counts.keys())
    doubled = sorted(r for r, n in counts.items() if n != 1)
    summaries = [p.summary() for p in phases]
    by = {(s["target"], s["mode"], s["rate"]): s for s in summaries}
    added50 = statistics.median(by[("sidecar", "rate", r)]["p50_ms"] - by[("direct", "rate", r)]["p50_ms"]
                                for r in rates)
    added99 = statistics.median(by[("sidecar", "rate", r)]["p99_ms"] - by[("direct", "rate", r)]["p99_ms"]
                                for r in rates)
    ratios: dict[str, float] = {}
    for r in rates:
        d, s = by[("direct", "rate", r)], by[("sidecar", "rate", r)]
        ratios[f"p99 at {r}/s"] = round(s["p99_ms"] / d["p99_ms"], 3) if d["p99_ms"] else 0.0
    d, s = by[("direct", "saturation", 0)], by[("sidecar", "saturation", 0)]
    ratios["saturation throughput"] = round(s["throughput"] / d["throughput"], 3) if d["throughput"] else 0.0
    baseline_path = Path(args.baseline)
    stored: dict[str, float] = {}
    if baseline_path.is_file():
        stored = json.loads(baseline_path.read_text()).get("ratios", {})
    checks = []
    for what, now in ratios.items():
        base = stored.get(what)
        if base is None:
            checks.append({"what": what, "ratio": now, "baseline": None, "ok": True, "note": "no stored baseline"})
            continue
        higher_is_better = what == "saturation throughput"
        ok = now >= base * (1 - args.tolerance) if higher_is_better else now <= base * (1 + args.tolerance)
        checks.append({"what": what, "ratio": now, "baseline": base, "ok": ok})
    if args.save_baseline:
        baseline_path.write_text(json.dumps({"stamp": stamp, "rates": rates, "ratios": ratios}, indent=2) + "\n")
        print(f"baseline saved to {baseline_path}")
    side_calls = sum(len(p.latencies_ms) for p in phases if p.target == "sidecar")
    side_cpu = sum(p.sidecar_cpu_s for p in phases if p.target == "sidecar")
    audit_sorted = sorted(audit_lat)
    report: dict[str, Any] = {
        "stamp": stamp,
        "rates": rates,
        "seconds": seconds,
        "concurrency": args.concurrency,
        "tolerance": args.tolerance,
        "phases": summaries,
        "added_ms": {"p50": round(added50, 3), "p99": round(added99, 3)},
        "sidecar": {"rss_mb": round(rss_mb, 1), "cpu_ms_per_call": round(1000 * side_cpu / max(1, side_calls), 3)},
        "audit": {
            "answered": len(audited),
            "rows": len(counts),
            "lost": len(lost),
            "doubled": len(doubled),
            "lost_examples": lost[:10],
            "latency_p50_ms": _pct(audit_sorted, 50),
            "latency_p99_ms": _pct(audit_sorted, 99),
        },
        "checks": checks,
    }
    report["ok"] = not lost and not doubled and all(c["ok"] for c in checks)
    for name in (f"load-{stamp}", "latest"):
        (out / f"{name}.json").write_text(json.dumps(report, indent=2))
        _plot(report, out / f"{name}.png")
    print(json.dumps({k: report[k] for k in ("added_ms", "sidecar", "audit", "checks", "ok")}, indent=2))
    print(f"report: {out / f'load-{stamp}.json'} and .png")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
