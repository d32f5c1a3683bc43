"""Audit delivery never loses an event: ingest down + sidecar crash, then every event arrives exactly once.

The receiver is a small real HTTP server in the test (the real `functions.ingest` needs Kafka;
its dedup-by-id contract is what makes at-least-once delivery exactly-once in effect).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
from aiohttp import web

from localstack.config import Ports
from tests.fixtures.sidecar import ALICE, SidecarProcess

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "server-a.json"


async def _start(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def _upstream() -> web.Application:
    async def mcp(request: web.Request) -> web.Response:
        msg = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": msg.get("id"), "result": {"content": []}})

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    return app


async def _calls(port: int, start: int, n: int) -> None:
    hdrs = {
        "Content-Type": "application/json",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        **ALICE,
    }
    sem = asyncio.Semaphore(16)
    async with httpx2.AsyncClient(timeout=30) as client:

        async def one(i: int) -> None:
            body = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "search", "arguments": {}}}
            async with sem:
                r = await client.post(f"http://127.0.0.1:{port}/mcp", content=json.dumps(body), headers=hdrs)
            assert r.status_code == 200, r.text

        await asyncio.gather(*(one(i) for i in range(start, start + n)))


async def test_ingest_down_and_crash_then_all_events_arrive_exactly_once(tmp_path: Path) -> None:
    ports = Ports.free()
    policy = tmp_path / "server-a.json"
    policy.write_bytes(POLICY.read_bytes())
    env = {
        "PORT": str(ports.sidecar_a),
        "METRICS_PORT": str(ports.sidecar_a_metrics),
        "LISTEN_HOST": "127.0.0.1",
        "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
        "POLICY_FILE": str(policy),
        "ANALYTICS_INGEST_URL": f"http://127.0.0.1:{ports.ingest}/events",
        "ANALYTICS_API_KEY": "k-test",
        "ANALYTICS_SOURCE": "server-a-gateway",
        "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
        "AUDIT_BATCH_SIZE": "200",
    }
    upstream = await _start(_upstream(), ports.sample_mcp)
    received: list[dict[str, Any]] = []
    bad_requests: list[str] = []

    async def events(request: web.Request) -> web.Response:
        if request.headers.get("x-api-key") != "k-test":
            bad_requests.append("api key")
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.content_type != "application/cloudevents-batch+json":
            bad_requests.append(request.content_type)
            return web.json_response({"error": "bad content type"}, status=415)
        received.extend(await request.json())
        return web.json_response({"accepted": True}, status=202)

    ingest_app = web.Application()
    ingest_app.router.add_post("/events", events)
    sc = await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc1.log")
    ingest: web.AppRunner | None = None
    try:
        await _calls(ports.sidecar_a, 0, 500)
        await asyncio.to_thread(sc.stop, signal.SIGKILL)  # crash with 500 undelivered events on disk
        sc = await asyncio.to_thread(SidecarProcess, env, tmp_path / "sc2.log")
        await _calls(ports.sidecar_a, 500, 500)
        status = httpx2.get(f"http://127.0.0.1:{ports.sidecar_a}/.sentinel/config/status", timeout=10).json()
        assert status["audit"]["spool_depth"] == 1000 and status["audit"]["sent"] == 0
        ingest = await _start(ingest_app, ports.ingest)
        for _ in range(300):
            if len(received) >= 1000:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # any duplicate would arrive now
        ids = Counter(e["id"] for e in received)
        assert len(ids) == 1000 and max(ids.values()) == 1, f"{len(received)} events, {len(ids)} unique"
        rpc_ids = sorted(e["data"]["rpc_id"] for e in received)
        assert rpc_ids == list(range(1000))
        ev = received[0]
        assert ev["specversion"] == "1.0" and ev["source"] == "server-a-gateway" and ev["type"] == "mcp.request"
        assert ev["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
        assert ev["data"]["decision"] == "allow" and ev["data"]["matched_grant"] == "alice-server-a"
        assert not bad_requests
        metrics = httpx2.get(f"http://127.0.0.1:{ports.sidecar_a_metrics}/metrics", timeout=10).text
        assert "mcp_gateway_audit_events_replayed_total 500.0" in metrics
        assert "mcp_gateway_audit_events_sent_total 1000.0" in metrics
        assert "mcp_gateway_audit_spool_depth 0.0" in metrics
    finally:
        await asyncio.to_thread(sc.stop)
        if ingest is not None:
            await ingest.cleanup()
        await upstream.cleanup()


async def test_spool_full_counts_drops(tmp_path: Path) -> None:
    from mcp_sentinel.cloudevents_line import EventEncoder
    from sidecar.audit import AuditSpool

    spool = AuditSpool(tmp_path, max_bytes=4096)
    accepted = sum(spool.append_line(EventEncoder(source="s", event_type="t").line({"n": i})) for i in range(100))
    assert 0 < accepted < 100
    assert spool.counters.dropped_full == 100 - accepted and spool.counters.depth == accepted


async def test_refused_batches_are_bisected_and_a_poison_event_is_kept_not_lost(tmp_path: Path) -> None:
    """Ingest answers 413 to batches over 16 events and 400 to any batch holding event #7: every other
    event is delivered exactly once, and #7 lands in the spool's rejected.jsonl with the reason."""
    from mcp_sentinel.cloudevents_line import EventEncoder
    from sidecar.audit import AuditSender, AuditSpool

    port = Ports.free().ingest
    received: list[dict[str, Any]] = []

    async def events(request: web.Request) -> web.Response:
        batch = await request.json()
        if len(batch) > 16:
            return web.json_response({"error": "request_too_large"}, status=413)
        if any(e["data"]["n"] == 7 for e in batch):
            return web.json_response({"error": "invalid_event", "errors": [{"field": "data"}]}, status=400)
        received.extend(batch)
        return web.json_response({"ok": True}, status=202)

    app = web.Application()
    app.router.add_post("/events", events)
    runner = await _start(app, port)
    spool = AuditSpool(tmp_path)
    for n in range(100):
        assert spool.append_line(EventEncoder(source="s", event_type="t").line({"n": n}))
    sender = AuditSender(spool, f"http://127.0.0.1:{port}/events", batch_size=64)
    task = asyncio.create_task(sender.run())
    try:
        for _ in range(200):
            if spool.counters.depth == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.cleanup()
    got = Counter(e["data"]["n"] for e in received)
    assert sorted(got) == [n for n in range(100) if n != 7] and max(got.values()) == 1
    assert spool.counters.sent == 99 and spool.counters.quarantined == 1 and spool.counters.depth == 0
    kept = [json.loads(line) for line in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [k["event"]["data"]["n"] for k in kept] == [7] and "400" in kept[0]["reason"]
