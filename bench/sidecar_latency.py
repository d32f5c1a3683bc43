"""Sidecar overhead: `python -m bench.sidecar_latency` (Taskfile `bench:sidecar`).

Processes: a minimal aiohttp upstream (answers instantly), the real sidecar in front of it, and a
load generator — each its own process on loopback. Measured in the same run, so the numbers are
ratios against the direct baseline:
* fixed rate 500 req/s of `tools/call` → p50/p99 added latency (sidecar minus direct);
* saturation (closed loop, 32 in flight) → tools/call per second through the sidecar vs direct;
* sidecar RSS after the run.
Targets: ≤ 0.5 ms p50 and ≤ 2 ms p99 added at 500 rps; ≥ 2,000 tools/call/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from mcp_sentinel.stack.config import REPO_ROOT, Ports

BODY = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": {"query": "q"}}}
).encode()
HEADERS = {
    "Content-Type": "application/json",
    "X-MCP-Human-ID": "alice",
    "X-MCP-Agent-ID": "workspace-agent",
    "X-MCP-Agent-Session": "sess-alice-a",
}


def run_upstream(port: int) -> None:
    """A minimal JSON-RPC upstream."""
    from aiohttp import web

    reply = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}'

    async def mcp(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply, content_type="application/json")

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def _fixed_rate(url: str, rate: int, seconds: float) -> list[float]:
    import aiohttp

    lat: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:

        async def one() -> None:
            t = time.perf_counter()
            async with s.post(url, data=BODY, headers=HEADERS) as r:
                await r.read()
                assert r.status == 200, r.status
            lat.append(time.perf_counter() - t)

        for _ in range(50):  # warm connections
            await one()
        lat.clear()
        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return lat


async def _saturate(url: str, concurrency: int, seconds: float) -> float:
    import aiohttp

    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                async with s.post(url, data=BODY, headers=HEADERS) as r:
                    await r.read()
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0)


def run_loadgen(url: str, mode: str, seconds: float) -> None:
    """Print one JSON result line."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if mode == "rate":
        lat = sorted(asyncio.run(_fixed_rate(url, 500, seconds)))
        print(json.dumps({"p50": statistics.median(lat), "p99": lat[int(len(lat) * 0.99) - 1], "n": len(lat)}))
    else:
        print(json.dumps({"rps": asyncio.run(_saturate(url, 32, seconds))}))


def _loadgen(url: str, mode: str, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.sidecar_latency",
            "--role",
            "loadgen",
            "--url",
            url,
            "--mode",
            mode,
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(REPO_ROOT),
        timeout=120,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _wait(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def main() -> None:
    """Run the benchmark (or one of its roles)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main", choices=["main", "upstream", "loadgen"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--url", default="")
    ap.add_argument("--mode", default="rate")
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    if args.role == "upstream":
        run_upstream(args.port)
        return
    if args.role == "loadgen":
        run_loadgen(args.url, args.mode, args.seconds)
        return

    ports = Ports.free()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.sidecar_latency",
                        "--role",
                        "upstream",
                        "--port",
                        str(ports.sample_mcp),
                    ],
                    env=env,
                    cwd=str(REPO_ROOT),
                )
            )
            sc_env = dict(
                env,
                PORT=str(ports.sidecar_a),
                METRICS_PORT=str(ports.sidecar_a_metrics),
                LISTEN_HOST="127.0.0.1",
                UPSTREAM_URL=f"http://127.0.0.1:{ports.sample_mcp}",
                POLICY_FILE=str(REPO_ROOT / "examples" / "policies" / "server-a.json"),
                AUDIT_SPOOL_DIR=str(Path(tmp) / "spool"),
                LOG_LEVEL="WARNING",
            )
            sidecar = subprocess.Popen([sys.executable, "-m", "sidecar"], env=sc_env, cwd=str(REPO_ROOT))
            procs.append(sidecar)
            _wait(ports.sample_mcp)
            _wait(ports.sidecar_a)
            direct = f"http://127.0.0.1:{ports.sample_mcp}/mcp"
            via = f"http://127.0.0.1:{ports.sidecar_a}/mcp"
            d_rate = _loadgen(direct, "rate", args.seconds)
            s_rate = _loadgen(via, "rate", args.seconds)
            d_sat = _loadgen(direct, "saturate", args.seconds)
            s_sat = _loadgen(via, "saturate", args.seconds)
            rss = psutil.Process(sidecar.pid).memory_info().rss / 1e6
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(timeout=10)
    add50 = (s_rate["p50"] - d_rate["p50"]) * 1000
    add99 = (s_rate["p99"] - d_rate["p99"]) * 1000
    print(f"fixed 500 req/s tools/call, {int(s_rate['n'])} requests each:")
    print(f"  direct  p50 {d_rate['p50'] * 1000:.3f} ms  p99 {d_rate['p99'] * 1000:.3f} ms")
    print(f"  sidecar p50 {s_rate['p50'] * 1000:.3f} ms  p99 {s_rate['p99'] * 1000:.3f} ms")
    print(
        f"  added   p50 {add50:.3f} ms (target <= 0.5: {'MET' if add50 <= 0.5 else 'MISSED'})"
        f"  p99 {add99:.3f} ms (target <= 2: {'MET' if add99 <= 2 else 'MISSED'})"
    )
    print("saturation (32 in flight):")
    print(
        f"  direct {d_sat['rps']:.0f} tools/call/s, sidecar {s_sat['rps']:.0f} tools/call/s "
        f"(ratio {s_sat['rps'] / d_sat['rps']:.2f}; target >= 2000: {'MET' if s_sat['rps'] >= 2000 else 'MISSED'})"
    )
    print(f"sidecar RSS {rss:.1f} MB")


if __name__ == "__main__":
    main()
