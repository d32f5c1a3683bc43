"""A usage view sends its lists at once (storage/usage.py): the answer is the raw table's, also with
many views running at once, and one failing list fails the view instead of a partial answer."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from mcp_sentinel.storage import rollups
from mcp_sentinel.storage.events import EventRecord, EventWriter
from mcp_sentinel.storage.queries import EventQueries
from mcp_sentinel.storage.usage import UsageQuery, usage


def _seeded(client: Any, db: str) -> datetime:
    now: datetime = client.query("SELECT now64(3)").result_rows[0][0].replace(tzinfo=UTC)
    records = []
    for i in range(400):
        body = {
            "server": f"srv-{i % 4}", "namespace": f"ns-{i % 2}", "team_id": f"team-{i % 2}", "human_id": f"h{i % 6}",
            "agent_id": f"a{i % 5}", "session_id": f"s{i % 13}", "decision": ("allow", "deny")[i % 2],
            "tool_name": f"tool-{i % 3}",
        }  # fmt: skip
        ts = now - timedelta(hours=60) + timedelta(seconds=i * 60 * 3600 // 400)
        records.append(EventRecord(f"cc-{i}", ts, "", "mcp-gateway", "mcp.request", json.dumps(body)))
    EventWriter(client, db).write(records)
    rollups.seal_pending(client, db, now=now)
    return now


def test_many_views_at_once_each_answer_like_the_raw_table(ch_client: Any, ch_database: str) -> None:
    now = _seeded(ch_client, ch_database)
    fast, raw = EventQueries(ch_client, ch_database), EventQueries(ch_client, ch_database, use_rollups=False)
    views = [
        UsageQuery(window_days=30), UsageQuery(window_days=1), UsageQuery(window_days=30, tool_name="tool-1"),
        UsageQuery(window_days=30, server="srv-2", decision="deny"), UsageQuery(window_days=7, decision="allow"),
        UsageQuery(window_days=7, team_ids=("team-1",), scoped=True), UsageQuery(window_days=2, limit=3),
        UsageQuery(window_days=30, namespaces=("ns-0",), tool_name="tool-2"),
    ]  # fmt: skip
    expected = [usage(raw, q, now=now) for q in views]
    assert expected[0].totals.events == 400
    with ThreadPoolExecutor(len(views)) as pool:
        for _ in range(3):
            got = list(pool.map(lambda q: usage(fast, q, now=now), views))
            assert got == expected


def test_a_failing_list_fails_the_whole_view(ch_client: Any, ch_database: str) -> None:
    now = _seeded(ch_client, ch_database)
    fast = EventQueries(ch_client, ch_database)
    assert usage(fast, UsageQuery(window_days=30), now=now).actors
    ch_client.command(f"DROP TABLE {ch_database}.events_usage_actors")
    for _ in range(2):  # and the next call is not stuck behind the failed one
        with pytest.raises(DatabaseError, match="events_usage_actors"):
            usage(fast, UsageQuery(window_days=30), now=now)
