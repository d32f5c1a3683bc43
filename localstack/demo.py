"""The demo `sentinel up` runs once the stack is healthy: real governed calls, then their audit rows.

It uses the official `mcp` client through the sidecars (the same path an agent takes), then
waits for the decisions to land in ClickHouse through ingest → Kafka → dispatcher → processor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from localstack.config import StackConfig

if TYPE_CHECKING:
    from mcp_sentinel.storage.queries import EventQueries

AGENT = "workspace-agent"


@dataclass(frozen=True)
class DemoCall:
    """One governed tool call the demo makes, and what the policy should answer."""

    caller: str
    session: str
    server: str
    tool: str
    arguments: dict[str, Any]
    expect: str


CALLS = (
    DemoCall("alice", "sess-alice-a", "server-a", "search", {"query": "roadmap"}, "allowed"),
    DemoCall("alice", "sess-alice-a", "server-a", "delete_document", {"doc_id": "welcome"}, "deny tool_not_granted"),
    DemoCall("alice", "sess-alice-a", "server-b", "search", {"query": "roadmap"}, "deny session_not_found"),
    DemoCall("bob", "sess-bob-b", "server-b", "list_documents", {}, "allowed"),
)


def _headers(call: DemoCall) -> dict[str, str]:
    return {"X-MCP-Human-ID": call.caller, "X-MCP-Agent-ID": AGENT, "X-MCP-Agent-Session": call.session}


async def _call(url: str, call: DemoCall) -> str:
    """Make one call with the official client; describe the outcome in one line."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=_headers(call), timeout=httpx2.Timeout(20.0))
    try:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            tools = await client.list_tools()
            result = await client.call_tool(call.tool, call.arguments)
            text = " ".join(getattr(c, "text", "") for c in result.content)[:60]
            return f"allowed ({len(tools.tools)} tools visible) -> {text!r}"
    except Exception as exc:
        return f"denied: {_denial(exc)}"
    finally:
        await http.aclose()


def _denial(exc: BaseException) -> str:
    """The HTTP status and reason of a denial, however the client surfaced it."""
    import httpx2
    from mcp.shared.exceptions import MCPError

    seen: list[BaseException] = [exc]
    while seen:
        err = seen.pop()
        if isinstance(err, MCPError):
            data = err.error.data if isinstance(err.error.data, dict) else {}
            return f"{data.get('reason', err.error.message)} (JSON-RPC {err.error.code})"
        if isinstance(err, httpx2.HTTPStatusError):
            try:
                body = err.response.json()
                reason = (body.get("error") or {}).get("data", {}).get("reason", "")
            except ValueError:
                reason = ""
            return f"{err.response.status_code} {reason}".strip()
        seen.extend(getattr(err, "exceptions", ()))
        if err.__cause__ is not None:
            seen.append(err.__cause__)
    return f"{exc.__class__.__name__}: {exc}"[:120]


def demo_rows(queries: EventQueries, since: datetime, deadline: float, want: int) -> list[dict[str, Any]]:
    """Poll until `want` of the demo agent's tool calls since `since` are queryable, or the deadline.

    Rows from earlier runs (the data folder persists) are not counted, so what is printed is
    evidence that this run's decisions made it through the pipeline.
    """
    from mcp_sentinel.storage.queries import EventFilter

    rows: list[dict[str, Any]] = []
    while True:
        try:
            page = queries.events(EventFilter(agent_id=AGENT, rpc_method="tools/call", since=since), limit=50)
            rows = [r.to_dict() for r in page.events]
        except Exception:  # ClickHouse still starting, or the table not migrated yet: keep polling
            rows = []
        if len(rows) >= want or time.monotonic() >= deadline:
            return rows
        time.sleep(0.5)


def _audit_rows(cfg: StackConfig, since: datetime, deadline: float) -> list[dict[str, Any]]:
    from localstack.parts.clickhouse import clickhouse_url
    from mcp_sentinel.storage.client import clickhouse_client_from_url
    from mcp_sentinel.storage.queries import EventQueries

    return demo_rows(EventQueries(clickhouse_client_from_url(clickhouse_url(cfg)), "mcp"), since, deadline, len(CALLS))


def run_demo(cfg: StackConfig, echo: Callable[[str], None]) -> None:
    """Make governed tool calls through the sidecars, show the decisions and their audit rows."""
    urls = {"server-a": cfg.url("sidecar_a", "/mcp"), "server-b": cfg.url("sidecar_b", "/mcp")}
    echo("")
    echo("demo: governed tool calls through the sidecars (official mcp client)")
    # A second of slack: the sidecars stamp events with their own clock (the same machine's).
    since = datetime.now(UTC) - timedelta(seconds=1)
    for call in CALLS:
        outcome = asyncio.run(_call(urls[call.server], call))
        echo(f"  {call.caller:<5} -> {call.server}.{call.tool:<16} expected {call.expect:<23} got {outcome}")
    from localstack.demo_remote import run_remote_demo

    run_remote_demo(cfg, echo)
    echo("demo: waiting for the audit rows (sidecar -> ingest -> Kafka -> processor -> ClickHouse)")
    rows = _audit_rows(cfg, since, time.monotonic() + 30)
    for row in rows:
        echo(
            f"  {row.get('timestamp', '')}  {row.get('human_id', ''):<5} {row.get('server', ''):<8} "
            f"{row.get('tool_name', ''):<16} {row.get('decision', ''):<5} {row.get('reason', '')}"
        )
    if len(rows) < len(CALLS):
        echo(f"  ({len(rows)} of {len(CALLS)} audit rows arrived within 30 s: check `sentinel logs ingest` / "
             "`sentinel logs processor`)")
    p = cfg.ports
    echo("")
    echo("the local stack:")
    echo(f"  dashboard      http://{cfg.host}:{p.front_door}/   (test@mcpruntime.org / test@123, "
         "admin@mcpruntime.org / admin@123)")
    echo(f"  API            http://{cfg.host}:{p.api}/api/openapi.json   (x-api-key: {cfg.admin_api_key})")
    echo(f"  MCP servers    http://{cfg.host}:{p.front_door}/server-a/mcp  and  /server-b/mcp "
         f"(sidecars on :{p.sidecar_a}, :{p.sidecar_b}); servers registered by URL get /<name>/mcp")
    echo(f"  Temporal UI    http://{cfg.host}:{p.temporal_ui}/")
    echo(f"  Prometheus     http://{cfg.host}:{p.prometheus}/")
    echo("  try:")
    echo(f"    curl -s http://{cfg.host}:{p.sidecar_a}/mcp -H 'Content-Type: application/json' "
         "-H 'Accept: application/json, text/event-stream' -H 'X-MCP-Human-ID: alice' "
         f"-H 'X-MCP-Agent-ID: {AGENT}' -H 'X-MCP-Agent-Session: sess-alice-a' "
         "-d '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"delete_document\","
         "\"arguments\":{\"doc_id\":\"welcome\"}}}'")
    events_url = f"http://{cfg.host}:{p.api}/api/events/filter?server=server-a"
    echo(f"    curl -s '{events_url}' -H 'x-api-key: {cfg.admin_api_key}'")
