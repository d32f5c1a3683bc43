"""What the audit sender does when ingest refuses (docs/decisions/audit-pipeline.md "Audit sender refusals").

Against a real `python -m functions.ingest` process on a real tansu broker: a 403 naming the events
(`binding_mismatch`) can never succeed, so those events are isolated by bisection and kept in the
spool's rejected.jsonl while every other event is delivered; a 401 or a 403 about the credential
(`credential_unbound`) is the operator's Secret to fix, so nothing is quarantined, the events stay
spooled, the alert counter climbs, and a fixed credential delivers them all.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from localstack.config import Ports
from mcp_sentinel.cloudevents_line import EventEncoder
from mcp_sentinel.gateway_credentials import GatewayBinding, issue
from mcp_sentinel.kafka.admin import ensure_topics
from sidecar.audit import AuditSender, AuditSpool
from tests.fixtures.kafka import KafkaStack, count_topic, read_topic

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = secrets.token_urlsafe(48)
A = GatewayBinding("team-a-ns", "server-a", "team-a")


class Ingest:
    def __init__(self, url: str, topic: str, bootstrap: str) -> None:
        self.url, self.topic, self.bootstrap = url, topic, bootstrap


@pytest.fixture
def ingest(kafka_stack: KafkaStack, tmp_path: Path) -> Iterator[Ingest]:
    ports = Ports.free()
    topic = f"t-{uuid.uuid4().hex[:8]}"
    ensure_topics([kafka_stack.bootstrap], [topic])
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOST": "127.0.0.1", "PORT": str(ports.ingest),
           "METRICS_PORT": str(ports.ingest_metrics), "KAFKA_BROKERS": kafka_stack.bootstrap, "KAFKA_TOPIC": topic,
           "INGEST_GATEWAY_SECRET": SECRET}
    log = tmp_path / "ingest.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "functions.ingest"], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, cwd=str(REPO_ROOT), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                httpx2.get(f"http://127.0.0.1:{ports.ingest}/health", timeout=1)
                break
            except httpx2.HTTPError:
                time.sleep(0.1)
        yield Ingest(f"http://127.0.0.1:{ports.ingest}/events", topic, kafka_stack.bootstrap)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def fill(spool: AuditSpool, n: int, foreign: frozenset[int] = frozenset()) -> None:
    for i in range(n):
        server = "server-b" if i in foreign else "server-a"
        ev = EventEncoder(source="server-a-gateway", event_type="mcp.request").line(
            {"namespace": "team-a-ns", "server": server, "i": i})
        assert spool.append_line(ev)


async def drive(sender: AuditSender, until: float, done: object = None) -> None:
    """Run the sender until the spool is empty (or `until` seconds pass), then stop it."""
    task = asyncio.create_task(sender.run())
    try:
        deadline = time.monotonic() + until
        while time.monotonic() < deadline and (done is None or sender.spool.counters.depth):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_binding_mismatch_is_quarantined_and_the_rest_delivered(ingest: Ingest, tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path / "spool")
    fill(spool, 20, foreign=frozenset({3, 11}))
    sender = AuditSender(spool, ingest.url, api_key=issue(SECRET, A), batch_size=8)
    await drive(sender, 60, done=True)
    assert spool.counters.depth == 0 and spool.counters.sent == 18 and spool.counters.quarantined == 2
    assert spool.counters.credential_refused == 0
    kept = [json.loads(line) for line in (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()]
    assert sorted(k["event"]["data"]["i"] for k in kept) == [3, 11]
    assert all(k["reason"] == "ingest answered 403 binding_mismatch" for k in kept)
    rows = read_topic(ingest.bootstrap, ingest.topic, 18)
    assert len(rows) == 18 and count_topic(ingest.bootstrap, ingest.topic, settle=0.5) == 18


@pytest.mark.parametrize("key", ["sgw1.forged.key", issue(secrets.token_urlsafe(48), A), ""],
                         ids=["malformed", "other-secret", "missing"])
async def test_credential_refusals_keep_events_until_the_credential_is_fixed(
    ingest: Ingest, tmp_path: Path, key: str
) -> None:
    spool = AuditSpool(tmp_path / "spool")
    fill(spool, 6)
    refused = AuditSender(spool, ingest.url, api_key=key)
    await drive(refused, 2.0)
    assert spool.counters.credential_refused >= 2  # retried with backoff, not given up
    assert spool.counters.depth == 6 and spool.counters.sent == 0 and spool.counters.quarantined == 0
    assert not (tmp_path / "spool" / "rejected.jsonl").exists()
    assert refused.last_error.startswith("ingest answered 40")
    fixed = AuditSender(spool, ingest.url, api_key=issue(SECRET, A))  # the operator fixed the Secret
    await drive(fixed, 60, done=True)
    assert spool.counters.sent == 6 and spool.counters.depth == 0
    assert count_topic(ingest.bootstrap, ingest.topic, settle=0.5) == 6


def test_metrics_export_the_credential_alert() -> None:
    from prometheus_client import generate_latest

    from sidecar.audit import AuditCounters
    from sidecar.metrics import SidecarMetrics

    text = generate_latest(SidecarMetrics(lambda: AuditCounters(credential_refused=3)).registry).decode()
    assert "mcp_gateway_audit_credential_refused_total 3.0" in text


async def test_a_403_not_naming_the_events_is_a_credential_problem(tmp_path: Path) -> None:
    """A 403 with no JSON, or with an error about the credential, never quarantines (fail-safe side)."""
    from aiohttp import web

    from tests.fixtures.sidecar import serve_app

    calls = 0

    async def events(_request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=403, text="<html>forbidden</html>")
        return web.json_response({"error": "credential_unbound"}, status=403)

    app = web.Application()
    app.router.add_post("/events", events)
    port = Ports.free().ingest
    runner = await serve_app(app, port)
    try:
        spool = AuditSpool(tmp_path)
        fill(spool, 3)
        sender = AuditSender(spool, f"http://127.0.0.1:{port}/events")
        await drive(sender, 1.5)
    finally:
        await runner.cleanup()
    assert spool.counters.credential_refused >= 2 and spool.counters.quarantined == 0 and spool.counters.depth == 3
    assert sender.last_error == "ingest answered 403 credential_unbound"
