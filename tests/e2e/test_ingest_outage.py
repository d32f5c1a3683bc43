"""With ingest stopped, 1,000 calls through the sidecar; then ingest starts: all 1,000 events arrive exactly once.

Real processes for every hop (sidecar spool → ingest → Kafka → dispatcher → processor → ClickHouse),
started from the same stack parts `./dev up` runs.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.parts.clickhouse import clickhouse_url
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url

PARTS = {"s3", "kafka", "clickhouse", "sample_mcp", "ingest", "processor", "dispatcher", "sidecars"}
ALICE = {"X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "workspace-agent", "X-MCP-Agent-Session": "sess-alice-a"}
CALLS = 1000


async def _calls(url: str, trace_id: str) -> None:
    """CALLS stateless (2026-07-28) tool calls, 16 in flight; every one must be answered 200."""
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "search",
        "MCP-Protocol-Version": "2026-07-28",
        **ALICE,
    }
    sem = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> None:
            params = {
                "name": "search",
                "arguments": {"query": "q"},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            }
            body = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params}
            tp = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
            async with sem:
                r = await client.post(url, content=json.dumps(body), headers={**headers, **tp})
            assert r.status_code == 200, r.text

        await asyncio.gather(*(one(i) for i in range(CALLS)))


def test_ingest_outage_then_every_event_arrives_exactly_once() -> None:
    data = Path(tempfile.mkdtemp(prefix="sentinel-outage-"))
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    trace_id = secrets.token_hex(16)
    try:
        with Supervisor(cfg) as sup:
            comps = local_stack(cfg, only=PARTS)
            sup.start_all(comps)
            sup.stop("ingest")
            asyncio.run(_calls(cfg.url("sidecar_a", "/mcp"), trace_id))
            status = httpx.get(cfg.url("sidecar_a", "/.sentinel/config/status"), timeout=10).json()
            assert status["audit"]["sent"] == 0 and status["audit"]["spool_depth"] >= CALLS
            sup.start(next(c for c in comps if c.name == "ingest"))
            ch = clickhouse_client_from_url(clickhouse_url(cfg))
            sql = (
                "SELECT count(), uniqExact(JSONExtractInt(payload, 'rpc_id')) FROM mcp.events FINAL "
                "WHERE trace_id = {t:String} AND rpc_method = 'tools/call'"
            )
            deadline = time.monotonic() + 90
            rows, distinct = 0, 0
            while time.monotonic() < deadline:
                try:
                    rows, distinct = ch.query(sql, parameters={"t": trace_id}).result_rows[0]
                except Exception:  # the table appears with the processor's first insert
                    rows = 0
                if rows >= CALLS:
                    break
                time.sleep(0.5)
            time.sleep(2.0)  # a duplicate, if any, would land now
            rows, distinct = ch.query(sql, parameters={"t": trace_id}).result_rows[0]
            assert (rows, distinct) == (CALLS, CALLS)
            status = httpx.get(cfg.url("sidecar_a", "/.sentinel/config/status"), timeout=10).json()
            assert status["audit"]["spool_depth"] == 0 and status["audit"]["quarantined"] == 0
    finally:
        shutil.rmtree(data, ignore_errors=True)
