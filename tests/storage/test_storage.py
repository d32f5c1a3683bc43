"""Schema, writer and API queries against the real engine (the embedded server, reached by URL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mcp_sentinel.storage.client import ClickHouseSettings, clickhouse_client_from_url
from mcp_sentinel.storage.events import EventRecord, EventWriter
from mcp_sentinel.storage.migrations import applied_versions, apply_retention, migrate
from mcp_sentinel.storage.queries import FILTER_NAMES, Cursor, EventFilter, EventQueries
from mcp_sentinel.storage.schema import MIGRATIONS, USAGE_TABLES, Migration
from mcp_sentinel.storage.usage import UsageQuery, usage

NOW = datetime.now(UTC).replace(microsecond=0)


def rec(i: int, *, ts: datetime | None = None, **payload: Any) -> EventRecord:
    body = {
        "server": "srv-a", "namespace": "ns-a", "team_id": "team-a", "cluster": "c1", "human_id": f"h{i % 3}",
        "agent_id": "agent-1", "session_id": f"s{i}", "decision": "allow" if i % 4 else "deny",
        "tool_name": "search" if i % 2 else "delete", "reason": "allowed" if i % 4 else "no_grant",
        "rpc_method": "tools/call", "subject_team_id": "caller-team",
    }  # fmt: skip
    body.update(payload)
    return EventRecord(
        event_id=f"ev-{i}",
        timestamp=ts or NOW - timedelta(minutes=i),
        trace_id=f"{i:032x}",
        source="mcp-gateway",
        event_type="mcp.request",
        payload=json.dumps(body),
    )


def test_migrations_are_versioned_and_idempotent(clickhouse_url: str) -> None:
    client = clickhouse_client_from_url(clickhouse_url)
    db = "t_migrate_twice"
    client.command(f"DROP DATABASE IF EXISTS {db}")
    assert applied_versions(client, db) == []
    assert migrate(client, db) == [m.version for m in MIGRATIONS]
    assert migrate(client, db) == []
    assert applied_versions(client, db) == [m.version for m in MIGRATIONS]
    extra = Migration(99, "add a column", ("ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS note String DEFAULT ''",))
    assert migrate(client, db, migrations=[*MIGRATIONS, extra]) == [99]
    assert migrate(client, db, migrations=[*MIGRATIONS, extra]) == []
    sql = f"SELECT name FROM system.columns WHERE database='{db}' AND table='events'"
    cols = {r[0] for r in client.query(sql).result_rows}
    assert {"note", "event_id", "reason", "rpc_method", "subject_team_id"} <= cols
    client.command(f"DROP DATABASE {db}")


def test_retention_is_configurable(clickhouse_url: str, ch_database: str) -> None:
    client = clickhouse_client_from_url(clickhouse_url)
    assert apply_retention(client, ch_database, 90) is False
    assert apply_retention(client, ch_database, 7) is True
    ddl = client.query(
        f"SELECT create_table_query FROM system.tables WHERE database='{ch_database}' AND name='events'"
    ).result_rows[0][0]
    assert "toIntervalDay(7)" in ddl and "PARTITION BY toYYYYMM(timestamp)" in ddl and "ReplacingMergeTree" in ddl
    rollup = client.query(
        f"SELECT create_table_query FROM system.tables WHERE database='{ch_database}' AND name='events_rollup'"
    ).result_rows[0][0]
    assert "toIntervalDay(7)" in rollup  # the rollups follow the events' retention
    for table in USAGE_TABLES:
        ddl = client.query(
            f"SELECT create_table_query FROM system.tables WHERE database='{ch_database}' AND name='{table}'"
        ).result_rows[0][0]
        assert "toIntervalDay(7)" in ddl, table


def test_settings_from_env_validate() -> None:
    env = {"CLICKHOUSE_URL": "http://u:p@h:1", "CLICKHOUSE_DB": "x", "EVENTS_RETENTION_DAYS": "3"}
    s = ClickHouseSettings.from_env(env)
    assert (s.url, s.database, s.retention_days) == ("http://u:p@h:1", "x", 3)
    with pytest.raises(ValueError, match="CLICKHOUSE_DB"):
        ClickHouseSettings.from_env({"CLICKHOUSE_DB": "x;drop"})
    with pytest.raises(ValueError, match="EVENTS_RETENTION_DAYS"):
        ClickHouseSettings.from_env({"EVENTS_RETENTION_DAYS": "0"})
    with pytest.raises(ValueError, match="CLICKHOUSE_URL"):
        clickhouse_client_from_url("tcp://h:9000")


def test_redelivered_ids_never_show_twice(ch_client: Any, ch_database: str) -> None:
    writer = EventWriter(ch_client, ch_database)
    first = writer.write([rec(1), rec(2), rec(1)])
    assert first.inserted == ("ev-1", "ev-2") and first.duplicates == ("ev-1",)
    again = writer.write([rec(2), rec(3)])
    assert again.inserted == ("ev-3",) and again.duplicates == ("ev-2",)
    # Race: bypass the existence check, as two writers inserting concurrently would.
    ch_client.insert(f"{ch_database}.events", [[r.event_id, r.timestamp, r.trace_id, r.source, r.event_type, r.payload]
                                              for r in (rec(1), rec(3))],
                     column_names=["event_id", "timestamp", "trace_id", "source", "event_type", "payload"])
    raw = ch_client.query(f"SELECT count() FROM {ch_database}.events").result_rows[0][0]
    assert raw == 5  # not merged yet: the physical duplicates exist
    q = EventQueries(ch_client, ch_database)
    assert q.count() == 3
    assert sorted(e.id for e in q.events(limit=100).events) == ["ev-1", "ev-2", "ev-3"]
    assert q.sources()[0].count == 3
    assert usage(q, UsageQuery()).totals.events == 3
    assert q.dashboard_summary().total_events == 3


def test_materialized_columns_and_every_filter(ch_client: Any, ch_database: str) -> None:
    EventWriter(ch_client, ch_database).write([rec(i) for i in range(8)] + [
        rec(100, server="srv-b", namespace="ns-b", team_id="team-b", cluster="c2", human_id="hb", agent_id="ab",
            session_id="sb", decision="deny", tool_name="drop", reason="expired", rpc_method="tools/list",
            subject_team_id="tb")
    ])  # fmt: skip
    q = EventQueries(ch_client, ch_database)
    values = {"trace_id": f"{100:032x}", "source": None, "event_type": None, "server": "srv-b", "namespace": "ns-b",
              "team_id": "team-b", "cluster": "c2", "human_id": "hb", "agent_id": "ab", "session_id": "sb",
              "decision": None, "tool_name": "drop", "reason": "expired", "rpc_method": "tools/list",
              "subject_team_id": "tb"}  # fmt: skip
    assert set(values) == set(FILTER_NAMES)
    for name, value in values.items():
        if value is None:
            continue
        page = q.events(EventFilter(**{name: value}))
        assert [e.id for e in page.events] == ["ev-100"], name
    row = q.events(EventFilter(server="srv-b")).events[0].to_dict()
    assert row["reason"] == "expired" and row["subject_team_id"] == "tb" and row["payload"]["server"] == "srv-b"
    assert len(q.events(EventFilter(source="mcp-gateway", decision="deny")).events) == 3
    assert q.events(EventFilter(since=NOW - timedelta(minutes=2, seconds=30))).events[-1].id == "ev-2"


@pytest.mark.parametrize("evil", ["' OR 1=1 --", "srv-a' OR '1'='1", "x\\'; DROP TABLE events; --", "{server:String}"])
def test_sql_ish_filters_return_nothing(ch_client: Any, ch_database: str, evil: str) -> None:
    EventWriter(ch_client, ch_database).write([rec(1), rec(2)])
    q = EventQueries(ch_client, ch_database)
    for name in FILTER_NAMES:
        assert q.events(EventFilter(**{name: evil})).events == [], name
    assert usage(q, UsageQuery(server=evil, namespaces=(evil,), scoped=True)).totals.events == 0
    assert q.count() == 2


def test_pagination_is_exact_and_stable(ch_client: Any, ch_database: str) -> None:
    writer = EventWriter(ch_client, ch_database)
    writer.write([rec(i) for i in range(5)])
    q = EventQueries(ch_client, ch_database)
    p1 = q.events(limit=2)
    assert [e.id for e in p1.events] == ["ev-0", "ev-1"] and p1.has_more and p1.next_cursor
    writer.write([rec(99, ts=NOW + timedelta(minutes=1))])  # a newer event must not shift the next page
    p2 = q.events(limit=2, cursor=Cursor.decode(p1.next_cursor))
    assert [e.id for e in p2.events] == ["ev-2", "ev-3"]
    p3 = q.events(limit=2, cursor=Cursor.decode(p2.next_cursor or ""))
    assert [e.id for e in p3.events] == ["ev-4"] and not p3.has_more and p3.next_cursor is None
    assert [e.id for e in q.events(limit=2, offset=1).events] == ["ev-0", "ev-1"]
    for bad in ("", "!!!", "eyJ0IjoxfQ", "bm90IGpzb24"):
        with pytest.raises(ValueError, match="cursor is invalid"):
            Cursor.decode(bad)


def test_empty_table_shapes(ch_client: Any, ch_database: str) -> None:
    q = EventQueries(ch_client, ch_database)
    assert q.sources() == [] and q.event_types() == [] and q.count() == 0
    summary = q.dashboard_summary()
    assert (summary.latest_source, summary.last_event_type, summary.last_event_time) == ("-", "-", None)
    body = usage(q, UsageQuery()).to_dict()
    assert body["servers"] == [] and "series" not in body and "recent" not in body
    assert q.events().events == [] and q.events().has_more is False


def test_usage_analytics_shapes_and_scoping(ch_client: Any, ch_database: str) -> None:
    EventWriter(ch_client, ch_database).write(
        [rec(i) for i in range(8)] + [rec(50, server="srv-b", namespace="ns-b", team_id="team-b", decision="")]
        + [rec(60, ts=NOW - timedelta(days=40))]
    )
    q = EventQueries(ch_client, ch_database)
    resp = usage(q, UsageQuery(window_days=30, limit=5))
    t = resp.totals
    assert (t.events, t.allowed, t.denied, t.unique_servers, t.unique_humans, t.unique_agents, t.unique_sessions) == (
        9, 6, 2, 2, 3, 1, 9)
    assert resp.servers[0].server == "srv-a" and resp.servers[0].events == 8 and resp.servers[0].denied == 2
    assert {d.decision: d.events for d in resp.decisions} == {"allow": 6, "deny": 2, "unknown": 1}
    assert sum(b.events for b in resp.series) == 9 and resp.series == sorted(resp.series, key=lambda b: b.bucket)
    assert [r.timestamp for r in resp.recent] == sorted((r.timestamp for r in resp.recent), reverse=True)
    assert len(resp.recent) == 5 and all(a.events for a in resp.actors)
    assert len(resp.tools) == 5  # top-N limited
    tools = usage(q, UsageQuery(limit=50)).tools
    assert {(x.tool_name, x.events) for x in tools if x.human_id == "h0"} == {("delete", 2), ("search", 1)}
    hourly = usage(q, UsageQuery(window_days=1))
    assert all(b.bucket.endswith(":00:00.000Z") for b in hourly.series)
    scoped = usage(q, UsageQuery(namespaces=("ns-b",), scoped=True))
    assert scoped.totals.events == 1 and scoped.filters == {"namespaces": ["ns-b"]}
    by_team = usage(q, UsageQuery(team_ids=("team-a",), scoped=True, tool_name="search"))
    assert by_team.totals.events == 4
    assert usage(q, UsageQuery(scoped=True)).totals.events == 0  # empty scope: no query, empty answer
    assert usage(q, UsageQuery(window_days=365)).totals.events == 10
    body = resp.to_dict()
    keys = {"window_days", "totals", "servers", "actors", "tools", "decisions", "series", "recent", "filters"}
    assert set(body) == keys


def test_server_events_and_summary(ch_client: Any, ch_database: str) -> None:
    EventWriter(ch_client, ch_database).write([rec(i) for i in range(3)] + [rec(9, server="srv-b")])
    q = EventQueries(ch_client, ch_database)
    assert [e.id for e in q.server_events("ns-a", "srv-a", limit=2)] == ["ev-0", "ev-1"]
    s = q.dashboard_summary()
    assert (s.total_events, s.active_servers, s.latest_source) == (4, 2, "mcp-gateway")
    assert s.last_event_time is not None and s.last_event_time.endswith("Z")


def test_newest_first_windows_widen_until_a_page_is_full(ch_client: Any, ch_database: str) -> None:
    """Pages try the last hour, then day, then everything: every page equals the full sort's slice."""
    times = (
        [NOW - timedelta(minutes=10 * i) for i in range(3)]  # in the last hour
        + [NOW - timedelta(hours=2 + i) for i in range(5)]  # in the last day
        + [NOW - timedelta(days=2 + i) for i in range(6)]  # older
        + [NOW + timedelta(days=1)]  # a clock ahead: the newest row, alone in its hour
    )
    recs = [rec(i, ts=t, server="srv-old" if 8 <= i < 14 else "srv-a") for i, t in enumerate(times)]
    EventWriter(ch_client, ch_database).write(recs)
    q = EventQueries(ch_client, ch_database)
    expected = [r.event_id for r in sorted(recs, key=lambda r: (r.timestamp, r.event_id), reverse=True)]
    for limit in (1, 2, 3, 4, 8, 9, 20):
        got: list[str] = []
        cursor: Cursor | None = None
        while True:
            page = q.events(limit=limit, cursor=cursor)
            got += [e.id for e in page.events]
            assert page.has_more == (page.next_cursor is not None)
            if page.next_cursor is None:
                break
            cursor = Cursor.decode(page.next_cursor)
        assert got == expected
        for off in (0, 2, 7, 12):
            assert [e.id for e in q.events(limit=limit, offset=off).events] == expected[off : off + limit]
    old = [e.id for e in q.events(EventFilter(server="srv-old")).events]
    assert old == [i for i in expected if 8 <= int(i[3:]) < 14]
    assert q.dashboard_summary().last_event_time == q.events(limit=1).events[0].timestamp
