"""Revoke propagation: `python -m bench.revoke_propagation` (Taskfile `bench:revoke`).

Starts the real governance path (Postgres, the local Kubernetes API server, the API, the sample
MCP server and the server-a sidecar) and measures, for a number of rounds, how long it takes from
`PATCH /api/runtime/sessions/<ns>/<name> {"revoked": true}` until the sidecar denies the next
`tools/call` with `session_revoked` (and the same for un-revoking until it allows again).
Baseline measured in the same run: the API write itself (the PATCH round trip), so the ratio
shows what the render → file → sidecar reload path adds. Target: ≤ 2 s locally.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.supervisor import Supervisor

PARTS = {"postgres", "kube", "api", "sample_mcp", "sidecars"}
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": {"query": "q"}}}
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "X-MCP-Human-ID": "alice",
    "X-MCP-Agent-ID": "workspace-agent",
    "X-MCP-Agent-Session": "sess-alice-a",
}


def _reason(resp: httpx.Response) -> str:
    if resp.status_code == 200:
        return "allowed"
    try:
        return str(json.loads(resp.content)["error"]["data"]["reason"])
    except (ValueError, KeyError, TypeError):
        return f"http {resp.status_code}"


def _mcp_session(client: httpx.Client, url: str) -> dict[str, str]:
    """Initialize an MCP session through the sidecar (the sample server is stateful); its headers."""
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    r = client.post(url, json=init, headers=HEADERS)
    r.raise_for_status()
    headers = dict(HEADERS, **{"Mcp-Session-Id": r.headers["mcp-session-id"]})
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    client.post(url, json=note, headers=headers).raise_for_status()
    return headers


def _until(client: httpx.Client, url: str, want: str, headers: dict[str, str], timeout: float = 15.0) -> float:
    """Seconds until the sidecar's answer has reason `want` (polling every 10 ms)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if _reason(client.post(url, json=CALL, headers=headers)) == want:
            return time.perf_counter() - t0
        time.sleep(0.01)
    raise TimeoutError(f"sidecar never answered {want!r} within {timeout}s")


def main() -> None:
    """Run the benchmark and print absolute numbers and ratios."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="sentinel-revoke-"))
    data.chmod(0o755)  # the postgres OS user must reach its folder when run as root
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    api_url = cfg.url("api")
    patch_url = f"{api_url}/api/runtime/sessions/mcp-servers/sess-alice-a"
    admin = {"x-api-key": cfg.admin_api_key}
    sidecar = cfg.url("sidecar_a", "/mcp")
    writes: list[float] = []
    revoke: list[float] = []
    unrevoke: list[float] = []
    try:
        with Supervisor(cfg) as sup, httpx.Client(timeout=10) as client:
            sup.start_all(local_stack(cfg, only=PARTS))
            session = _mcp_session(client, sidecar)
            _until(client, sidecar, "allowed", session)
            for _ in range(args.rounds):
                for revoked, sink in ((True, revoke), (False, unrevoke)):
                    t0 = time.perf_counter()
                    r = client.patch(patch_url, json={"revoked": revoked}, headers=admin)
                    r.raise_for_status()
                    writes.append(time.perf_counter() - t0)
                    want = "session_revoked" if revoked else "allowed"
                    sink.append(writes[-1] + _until(client, sidecar, want, session))
    finally:
        shutil.rmtree(data, ignore_errors=True)
    base = statistics.median(writes)
    print(f"revoke propagation over {args.rounds} rounds (API PATCH -> sidecar decision):")
    print(f"  baseline: API write p50 {base * 1000:.1f} ms")
    for name, vals in (("revoke -> session_revoked", revoke), ("unrevoke -> allowed", unrevoke)):
        p50, worst = statistics.median(vals), max(vals)
        print(
            f"  {name:<26} p50 {p50 * 1000:.0f} ms  max {worst * 1000:.0f} ms  "
            f"(x{p50 / base:.1f} the write; target <= 2000 ms: {'MET' if worst <= 2.0 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
