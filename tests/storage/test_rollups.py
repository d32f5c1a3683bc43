"""Sealed rollups: upgrade backfill, exactness under deliberate redelivery, equivalence with `events FINAL`.

Every comparison runs the same API query function twice, once through the rollups and once on
the raw table only (`use_rollups=False`), with the window's end pinned so both see one window.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.scale_data import generate
from mcp_sentinel.storage import rollups
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.events import EventRecord, EventWriter
from mcp_sentinel.storage.migrations import applied_versions, migrate
from mcp_sentinel.storage.queries import EventQueries
from mcp_sentinel.storage.schema import MIGRATIONS, SEAL_LAYOUT, USAGE_TABLES
from mcp_sentinel.storage.usage import UsageQuery, usage


def _records(n: int, now: datetime, *, hours: int = 50, salt: str = "") -> list[EventRecord]:
    out = []
    for i in range(n):
        body = {
            "server": f"srv-{i % 3}", "namespace": f"ns-{i % 3}", "team_id": f"team-{i % 3}", "human_id": f"h{i % 5}",
            "agent_id": f"a{i % 7}", "session_id": f"s{i % 11}", "decision": ("allow", "deny", "")[i % 3],
            "tool_name": f"tool-{i % 4}",
        }  # fmt: skip
        ts = now - timedelta(hours=hours) + timedelta(seconds=i * hours * 3600 // n)
        out.append(EventRecord(f"ev-{salt}{i}", ts, "", "mcp-gateway", "mcp.request", json.dumps(body)))
    return out


def _same(client: Any, db: str, now: datetime) -> None:
    """Every aggregate read path answers the same through rollups and on the raw table."""
    fast, raw = EventQueries(client, db), EventQueries(client, db, use_rollups=False)
    assert fast.count() == raw.count()
    assert fast.sources() == raw.sources()
    assert fast.event_types() == raw.event_types()
    assert fast.dashboard_summary() == raw.dashboard_summary()
    for q in (UsageQuery(window_days=1), UsageQuery(window_days=3), UsageQuery(window_days=30, limit=50),
              UsageQuery(window_days=30, tool_name="tool-1")):  # fmt: skip
        assert usage(fast, q, now=now) == usage(raw, q, now=now)


def _now(client: Any) -> datetime:
    ts: datetime = client.query("SELECT now64(3)").result_rows[0][0]
    return ts.replace(tzinfo=UTC)


def test_upgrade_backfills_existing_events(clickhouse_url: str) -> None:
    admin = clickhouse_client_from_url(clickhouse_url)
    db = f"t_up_{uuid.uuid4().hex[:8]}"
    try:
        migrate(admin, db, migrations=MIGRATIONS[:1])  # a database from before the rollups
        client = clickhouse_client_from_url(clickhouse_url, db)
        before = _now(client)
        EventWriter(client, db).write(_records(600, before))
        assert migrate(admin, db) == [2, 3, 4]
        assert applied_versions(admin, db) == [1, 2, 3, 4]
        seals = rollups.current_seals(client, db)
        assert {w for w, _ in seals} == {1, 24}  # closed hours and at least one closed day
        now = _now(client)
        read = rollups.plan(client, db, None, now)
        assert read.seal_ids, "the backfilled seals are used"
        # The migration sealed every hour closed `SETTLE` before it sealed, at some moment between
        # `before` and `now`: only the hours from there on are read raw, nothing before the data.
        # (CI ran this across 03:00 and 04:00: which hour that is depends on the clock.)
        expected = {((rollups.floor_hour(t - rollups.SETTLE), None),) for t in (before, now)}
        assert read.raw_ranges in expected, (read.raw_ranges, before, now)
        _same(client, db, now)
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {db}")


def test_redelivery_is_never_double_counted(ch_client: Any, ch_database: str) -> None:
    """Duplicates reach the table (the writer's id memory is off), before and after sealing."""
    now = _now(ch_client)
    events = _records(400, now)
    EventWriter(ch_client, ch_database, recent_ids=0).write(events)
    assert rollups.seal_pending(ch_client, ch_database, now=now) > 0
    # Redeliver some events of the first sealed hours (twice), through fresh writers.
    EventWriter(ch_client, ch_database, recent_ids=0).write(events[:40:3])
    EventWriter(ch_client, ch_database, recent_ids=0).write(events[:40:3])
    raw_rows = ch_client.query("SELECT count() FROM events").result_rows[0][0]
    assert raw_rows > 400, "the duplicates are stored, not merged yet"
    fast = EventQueries(ch_client, ch_database)
    assert fast.count() == 400
    assert usage(fast, UsageQuery(window_days=30), now=now).totals.events == 400
    read = rollups.plan(ch_client, ch_database, None, now)
    assert read.seal_ids and len(read.raw_ranges) > 1, "only hours that received duplicates read raw"
    _same(ch_client, ch_database, now)
    # Resealed with the duplicates present: still exact, and rollups serve those hours again.
    assert rollups.seal_pending(ch_client, ch_database, now=now) > 0
    assert len(rollups.plan(ch_client, ch_database, None, now).raw_ranges) == 1
    assert fast.count() == 400
    _same(ch_client, ch_database, now)
    # A merge collapses the duplicates: the fingerprint changes again, answers do not.
    ch_client.command("OPTIMIZE TABLE events FINAL")
    assert ch_client.query("SELECT count() FROM events").result_rows[0][0] == 400
    _same(ch_client, ch_database, now)


def test_seals_of_an_older_layout_are_ignored_and_resealed(ch_client: Any, ch_database: str) -> None:
    """A seal written by an older writer (mid rolling upgrade) has no rows in the newer rollup tables:
    readers must not trust it, and the next sealing covers its buckets again."""
    now = _now(ch_client)
    EventWriter(ch_client, ch_database).write(_records(300, now))
    assert rollups.seal_pending(ch_client, ch_database, now=now) > 0
    good = rollups.current_seals(ch_client, ch_database)
    # Newer seals with matching fingerprints but a layout this code did not write, and no rollup rows.
    ch_client.insert(
        f"{ch_database}.events_rollup_seals",
        [[w, b, 12345, n, h, 0] for (w, b), (_sid, (n, h)) in good.items()],
        column_names=["width", "bucket", "seal_id", "rows", "hash", "layout"],
    )
    assert rollups.current_seals(ch_client, ch_database) == good
    assert EventQueries(ch_client, ch_database).count() == 300
    _same(ch_client, ch_database, now)
    # Older-layout seals only: every bucket reads raw, stays exact, and is resealed.
    ch_client.command(f"ALTER TABLE {ch_database}.events_rollup_seals DELETE WHERE layout != 0",
                      settings={"mutations_sync": 2})  # fmt: skip
    assert rollups.current_seals(ch_client, ch_database) == {}
    assert EventQueries(ch_client, ch_database).count() == 300
    assert rollups.seal_pending(ch_client, ch_database, now=now) == len(good)
    _same(ch_client, ch_database, now)


def test_late_event_in_a_sealed_hour_counts_immediately(ch_client: Any, ch_database: str) -> None:
    now = _now(ch_client)
    EventWriter(ch_client, ch_database).write(_records(200, now))
    rollups.seal_pending(ch_client, ch_database, now=now)
    fast = EventQueries(ch_client, ch_database)
    before = usage(fast, UsageQuery(window_days=3), now=now).totals
    late = _records(1, now - timedelta(hours=30), hours=1, salt="late-")  # an hour sealed above
    EventWriter(ch_client, ch_database).write(late)
    after = usage(fast, UsageQuery(window_days=3), now=now).totals
    assert after.events == before.events + 1
    _same(ch_client, ch_database, now)


def test_changed_payload_under_a_known_id_invalidates_the_seal(ch_client: Any, ch_database: str) -> None:
    """A redelivery is not trusted to be identical: the raw row count changes, so the hour reads raw."""
    now = _now(ch_client)
    events = _records(100, now)
    EventWriter(ch_client, ch_database).write(events)
    rollups.seal_pending(ch_client, ch_database, now=now)
    e = events[10]
    altered = e._replace(payload=json.dumps({**json.loads(e.payload), "decision": "deny", "server": "srv-x"}))
    EventWriter(ch_client, ch_database, recent_ids=0).write([altered])
    _same(ch_client, ch_database, now)


def test_empty_database_and_seal_of_nothing(ch_client: Any, ch_database: str) -> None:
    assert rollups.seal_pending(ch_client, ch_database) == 0
    _same(ch_client, ch_database, _now(ch_client))


@pytest.fixture(scope="module")
def scale_db(clickhouse_url: str) -> Iterator[tuple[Any, str, datetime]]:
    """20,000 synthetic events over 10 days (bench generator), sealed, plus an unsealed tail."""
    admin = clickhouse_client_from_url(clickhouse_url)
    db = f"t_eq_{uuid.uuid4().hex[:8]}"
    migrate(admin, db)
    client = clickhouse_client_from_url(clickhouse_url, db)
    generate(client, db, 20_000, days=10)
    now = _now(client)
    rollups.seal_pending(client, db, now=now)
    # Some hours change after sealing: they must be read raw, mixed with sealed ones.
    EventWriter(client, db).write(_records(50, now, hours=200, salt="after-"))
    yield client, db, now
    admin.command(f"DROP DATABASE IF EXISTS {db}")


_filters = st.fixed_dictionaries(
    {
        "window_days": st.sampled_from([1, 2, 3, 7, 9, 30, 365]),
        "limit": st.integers(1, 50),
        "server": st.sampled_from(["", "srv-0", "srv-21", "srv-x"]),
        "decision": st.sampled_from(["", "allow", "deny"]),
        "tool_name": st.sampled_from(["", "tool-0", "tool-3"]),
        "namespaces": st.lists(st.sampled_from(["ns-team-0", "ns-team-3", "ns-1"]), max_size=2).map(tuple),
        "team_ids": st.lists(st.sampled_from(["team-0", "team-5", "team-1"]), max_size=2).map(tuple),
        "scoped": st.booleans(),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(f=_filters)
def test_usage_equals_the_raw_table_for_any_filters(scale_db: tuple[Any, str, datetime], f: dict[str, Any]) -> None:
    client, db, now = scale_db
    q = UsageQuery(**f)
    assert usage(EventQueries(client, db), q, now=now) == usage(EventQueries(client, db, use_rollups=False), q, now=now)


def test_counts_and_dashboard_equal_the_raw_table(scale_db: tuple[Any, str, datetime]) -> None:
    client, db, now = scale_db
    _same(client, db, now)


def _calls(now: datetime, who: str, tool: str, per_hour: int, hours: range, salt: str) -> list[EventRecord]:
    body = {"server": "srv-0", "namespace": "ns-0", "team_id": "team-0", "human_id": who, "agent_id": f"{who}-a",
            "session_id": f"s-{who}", "decision": "allow", "tool_name": tool}  # fmt: skip
    return [
        EventRecord(
            f"ev-{salt}-{h}-{i}",
            now - timedelta(hours=h, minutes=i % 50 + 1),
            "",
            "mcp-gateway",
            "mcp.request",
            json.dumps(body),
        )  # fmt: skip
        for h in hours
        for i in range(per_hour)
    ]


def test_top_tools_pruning_keeps_a_light_but_steady_combination(ch_client: Any, ch_database: str) -> None:
    """The pruned top-N (usage_lists.top_tools) must not drop a combination whose every bucket is small but
    whose total wins: 2 calls an hour for 60 hours (120) beat 100 calls in one hour, and ties rank by name."""
    now = _now(ch_client)
    events = _calls(now, "burst", "tool-a", 100, range(30, 31), "b")
    events += _calls(now, "steady", "tool-b", 2, range(3, 63), "s")
    events += [e for k in range(8) for e in _calls(now, f"tie{k}", "tool-c", 1, range(5, 9), f"t{k}")]
    EventWriter(ch_client, ch_database).write(events)
    assert rollups.seal_pending(ch_client, ch_database, now=now) > 0
    fast, raw = EventQueries(ch_client, ch_database), EventQueries(ch_client, ch_database, use_rollups=False)
    for window, limit in ((8, 1), (8, 2), (8, 5), (8, 50), (30, 4), (365, 3), (3, 2)):  # > 7 d: pruned
        q = UsageQuery(window_days=window, limit=limit)
        got = usage(fast, q, now=now)
        assert got == usage(raw, q, now=now), (window, limit)
    top = usage(fast, UsageQuery(window_days=8, limit=2), now=now).tools
    assert [(t.human_id, t.events) for t in top] == [("steady", 120), ("burst", 100)]


def test_usage_lists_are_read_from_the_per_list_rollups(ch_client: Any, ch_database: str) -> None:
    """The wiring: with the usage rollups sealed, totals, actors and tools come from them (a row added under
    a current seal id shows up), and a filter none of them keys (namespace) still answers exactly."""
    now = _now(ch_client)
    EventWriter(ch_client, ch_database).write(_records(300, now))
    rollups.seal_pending(ch_client, ch_database, now=now)
    fast = EventQueries(ch_client, ch_database)
    q = UsageQuery(window_days=30, limit=50)
    before = usage(fast, q, now=now)
    read = rollups.plan(ch_client, ch_database, now - timedelta(days=30), now)
    sid, bucket = read.seal_ids[0], read.first_bucket
    width = 24 if bucket is not None and bucket.hour == 0 and bucket in {b for (w, b) in rollups.current_seals(
        ch_client, ch_database) if w == 24} else 1  # fmt: skip
    cols = "width, bucket, seal_id"
    ch_client.command(
        f"INSERT INTO {ch_database}.events_usage_servers ({cols}, server, events) "
        f"SELECT {width}, toDateTime('{bucket:%Y-%m-%d %H:%M:%S}', 'UTC'), {sid}, 'srv-planted', 7"
    )
    ch_client.command(
        f"INSERT INTO {ch_database}.events_usage_actors ({cols}, human_id, events) "
        f"SELECT {width}, toDateTime('{bucket:%Y-%m-%d %H:%M:%S}', 'UTC'), {sid}, 'h-planted', 1000"
    )
    ch_client.command(
        f"INSERT INTO {ch_database}.events_usage_tools ({cols}, server, tool_name, events) "
        f"SELECT {width}, toDateTime('{bucket:%Y-%m-%d %H:%M:%S}', 'UTC'), {sid}, 's', 't', 1000"
    )
    after = usage(fast, q, now=now)
    assert after.totals.events == before.totals.events + 7
    assert "srv-planted" in {s.server for s in after.servers}
    assert after.actors[0].human_id == "h-planted"
    assert (after.tools[0].server, after.tools[0].tool_name) == ("s", "t")
    scoped = UsageQuery(window_days=30, namespaces=("ns-1",), scoped=True)
    assert (
        usage(fast, scoped, now=now).actors
        == usage(EventQueries(ch_client, ch_database, use_rollups=False), scoped, now=now).actors
    )


def test_mid_upgrade_counts_keep_layout3_seals_and_usage_reads_raw(ch_client: Any, ch_database: str) -> None:
    """Right after migration 4 every seal is layout 3 (no rows in the usage rollups): count, sources and the
    dashboard keep reading the rollups they fill, usage reads raw until resealed; all stay exact."""
    now = _now(ch_client)
    EventWriter(ch_client, ch_database).write(_records(300, now))
    sealed = rollups.seal_pending(ch_client, ch_database, now=now)
    ch_client.command(f"ALTER TABLE {ch_database}.events_rollup_seals UPDATE layout = 3 WHERE 1",
                      settings={"mutations_sync": 2})  # fmt: skip
    for table in USAGE_TABLES:
        ch_client.command(f"TRUNCATE TABLE {ch_database}.{table}")
    assert rollups.plan(ch_client, ch_database, None, now).seal_ids, "layout-3 seals serve the older rollups"
    assert not rollups.plan(ch_client, ch_database, None, now, min_layout=SEAL_LAYOUT).seal_ids
    assert usage(EventQueries(ch_client, ch_database), UsageQuery(window_days=30), now=now).totals.events == 300
    _same(ch_client, ch_database, now)
    assert rollups.seal_pending(ch_client, ch_database, now=now) == sealed  # the writer reseals every bucket
    assert rollups.plan(ch_client, ch_database, None, now, min_layout=SEAL_LAYOUT).seal_ids
    _same(ch_client, ch_database, now)
