"""The demo waits for this run's audit rows, not rows a previous `sentinel up` left in ClickHouse."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from localstack.demo import AGENT, demo_rows
from mcp_sentinel.storage.events import EventRecord, EventWriter
from mcp_sentinel.storage.queries import EventQueries


def _row(i: int, ts: datetime) -> EventRecord:
    body = {"agent_id": AGENT, "rpc_method": "tools/call", "human_id": "alice", "server": "server-a",
            "tool_name": "search", "decision": "allow", "reason": "allowed"}
    return EventRecord(event_id=f"demo-{i}", timestamp=ts, trace_id=f"{i:032x}", source="mcp-gateway",
                       event_type="mcp.request", payload=json.dumps(body))


def test_rows_of_an_earlier_run_do_not_count(ch_client: Any, ch_database: str) -> None:
    now = datetime.now(UTC)
    writer = EventWriter(ch_client, ch_database)
    writer.write([_row(i, now - timedelta(hours=1)) for i in range(4)])  # an earlier run's four calls
    queries = EventQueries(ch_client, ch_database)
    since = now - timedelta(seconds=1)

    t0 = time.monotonic()
    assert demo_rows(queries, since, time.monotonic() + 1.0, want=4) == []
    assert time.monotonic() - t0 >= 1.0  # it waited for the deadline instead of taking the old rows

    writer.write([_row(10 + i, now) for i in range(3)])
    partial = demo_rows(queries, since, time.monotonic() + 0.5, want=4)
    assert sorted(r["id"] for r in partial) == ["demo-10", "demo-11", "demo-12"]

    writer.write([_row(13, now)])
    assert len(demo_rows(queries, since, time.monotonic() + 10, want=4)) == 4


def test_an_unreachable_store_is_polled_until_the_deadline(ch_client: Any) -> None:
    queries = EventQueries(ch_client, "no_such_database")
    t0 = time.monotonic()
    assert demo_rows(queries, datetime.now(UTC), time.monotonic() + 0.6, want=4) == []
    assert time.monotonic() - t0 >= 0.6
