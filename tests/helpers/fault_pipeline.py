"""The audit pipeline under a steady stream of tool calls, for fault injection (and the load bench).

`PipelineRun` starts the real stack parts through the Supervisor, `CallStream` drives tools/call
through the server-a sidecar from a thread and records what the client observed, and
`audit_rows` reads what reached ClickHouse.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.parts.clickhouse import clickhouse_url
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url

PIPELINE = {"s3", "kafka", "clickhouse", "ingest", "processor", "dispatcher", "sample_mcp", "sidecars"}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
ALICE = {"X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "workspace-agent", "X-MCP-Agent-Session": "sess-alice-a"}
BOB = {"X-MCP-Human-ID": "bob", "X-MCP-Agent-ID": "workspace-agent", "X-MCP-Agent-Session": "sess-bob-b"}
# (kind, identity, tool): what the policy says about each call on server-a.
MIX = (
    ("allow", ALICE, "search"),
    ("deny", ALICE, "delete_document"),
    ("allow", ALICE, "list_documents"),
    ("deny", BOB, "search"),
)


@contextmanager
def pipeline(data_dir: Path, parts: set[str] | None = None) -> Iterator[tuple[StackConfig, Supervisor]]:
    """The audit pipeline (or `parts` of the stack) running on free ports under `data_dir`."""
    cfg = StackConfig(data_dir=data_dir, ports=Ports.free())
    with Supervisor(cfg) as sup:
        sup.start_all(local_stack(cfg, only=parts or PIPELINE))
        yield cfg, sup


@dataclass
class Observed:
    """One call as the client saw it (`status` None: no HTTP response, e.g. the sidecar was down)."""

    rpc_id: str
    kind: str
    tool: str
    status: int | None
    sent_at: float
    latency: float = 0.0


def call(client: httpx2.Client, url: str, rpc_id: str, who: dict[str, str], tool: str,
         args: dict[str, Any] | None = None) -> httpx2.Response:
    """One stateless 2026-07-28 tools/call with matching Mcp-Method/Mcp-Name headers."""
    body = {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call",
            "params": {"name": tool, "arguments": args if args is not None else ({"query": "a"} if tool == "search"
                                                                                 else {}), "_meta": META}}
    if tool == "delete_document":
        body["params"]["arguments"] = {"title": "welcome"}
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool, **who}
    return client.post(url, content=json.dumps(body), headers=headers)


@dataclass
class CallStream:
    """A background thread sending the MIX round-robin every `interval` seconds until stopped or `limit` calls."""

    url: str
    prefix: str
    interval: float = 0.05
    limit: int = 100_000
    observed: list[Observed] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> CallStream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Observed]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        return self.observed

    def _run(self) -> None:
        client = httpx2.Client(timeout=httpx2.Timeout(15.0))
        try:
            for i in itertools.count():
                if self._stop.is_set() or i >= self.limit:
                    return
                kind, who, tool = MIX[i % len(MIX)]
                rpc_id = f"{self.prefix}-{i}"
                t0 = time.monotonic()
                status: int | None
                try:
                    status = call(client, self.url, rpc_id, who, tool).status_code
                except httpx2.HTTPError:
                    status = None
                    client.close()
                    client = httpx2.Client(timeout=httpx2.Timeout(15.0))
                self.observed.append(Observed(rpc_id, kind, tool, status, t0, time.monotonic() - t0))
                self._stop.wait(self.interval)
        finally:
            client.close()


def audit_rows(cfg: StackConfig, prefix: str) -> dict[str, list[tuple[str, str, str]]]:
    """rpc id → [(event id, decision, reason)] for every audit row (FINAL) whose rpc id starts with `prefix`."""
    ch = clickhouse_client_from_url(clickhouse_url(cfg))
    try:
        rows = ch.query(
            "SELECT JSONExtractString(payload, 'rpc_id') AS rid, event_id, decision, reason "
            "FROM mcp.events FINAL WHERE startsWith(rid, {p:String})",
            parameters={"p": prefix + "-"},
        ).result_rows
    finally:
        ch.close()
    out: dict[str, list[tuple[str, str, str]]] = {}
    for rid, eid, decision, reason in rows:
        out.setdefault(rid, []).append((eid, decision, reason))
    return out


def physical_duplicates(cfg: StackConfig) -> int:
    """Rows minus distinct event ids without FINAL (what a merge would still have to collapse)."""
    ch = clickhouse_client_from_url(clickhouse_url(cfg))
    try:
        total, distinct = ch.query("SELECT count(), uniqExact(event_id) FROM mcp.events").result_rows[0]
    finally:
        ch.close()
    return int(total) - int(distinct)


def wait_for_rows(cfg: StackConfig, prefix: str, expected: set[str], timeout: float) -> dict[str, list[Any]]:
    """Poll ClickHouse until every expected rpc id has a row (or the timeout passes); the last read."""
    deadline = time.monotonic() + timeout
    rows: dict[str, list[Any]] = {}
    while time.monotonic() < deadline:
        try:
            rows = audit_rows(cfg, prefix)
        except Exception:  # ClickHouse may still be starting after a kill: keep polling
            rows = {}
        if expected <= rows.keys():
            return rows
        time.sleep(0.5)
    return rows
