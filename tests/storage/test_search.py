"""Timestamps-first event search (storage/search.py) equals `FINAL` over the whole table, duplicates and all.

Rows are inserted raw (bypassing the writer's dedup), as two processors racing or a redelivery
before a merge would leave them, so the timestamps step sees repeated and stale keys.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mcp_sentinel.storage import search
from mcp_sentinel.storage.queries import Cursor, EventFilter, EventQueries

NOW = datetime.now(UTC).replace(microsecond=0)
COLUMNS = ["event_id", "timestamp", "trace_id", "source", "event_type", "payload"]


def _insert(client: Any, db: str, rows: list[tuple[str, datetime, dict[str, str]]]) -> None:
    """One INSERT (one part) of raw rows: (id, time, payload fields)."""
    client.insert(
        f"{db}.events",
        [[i, ts, f"trace-{i}", "mcp-gateway", "mcp.request", json.dumps(p)] for i, ts, p in rows],
        column_names=COLUMNS,
    )


def _all_pages(q: EventQueries, f: EventFilter, limit: int) -> list[str]:
    got: list[str] = []
    cursor: Cursor | None = None
    while True:
        page = q.events(f, limit=limit, cursor=cursor)
        got += [e.id for e in page.events]
        assert page.has_more == (page.next_cursor is not None)
        if page.next_cursor is None:
            return got
        cursor = Cursor.decode(page.next_cursor)


def _final_order(client: Any, db: str, where: str = "1") -> list[str]:
    """The reference: `FINAL` over the whole table, in one query."""
    sql = f"SELECT event_id FROM {db}.events FINAL WHERE {where} ORDER BY timestamp DESC, event_id DESC"
    return [str(r[0]) for r in client.query(sql).result_rows]


def test_unmerged_redeliveries_beyond_the_slack_never_show_twice(ch_client: Any, ch_database: str) -> None:
    """A day apart (so no recent window holds a page), each stored three times in three parts: the
    timestamps step's first ask is mostly repeats, so it must widen; every page still equals `FINAL`."""
    rows = [(f"ev-{i:03d}", NOW - timedelta(days=i, minutes=i), {"human_id": "h1", "session_id": "s1"})
            for i in range(40)]  # fmt: skip
    for _ in range(3):
        _insert(ch_client, ch_database, rows)
    raw = ch_client.query(f"SELECT count() FROM {ch_database}.events").result_rows[0][0]
    assert raw == 120  # the duplicates exist physically
    q = EventQueries(ch_client, ch_database)
    expected = _final_order(ch_client, ch_database)
    assert len(expected) == 40
    for f in (EventFilter(), EventFilter(human_id="h1"), EventFilter(session_id="s1")):
        for limit in (1, 3, 7, 40, 100):
            assert _all_pages(q, f, limit) == expected, (f, limit)
        for off in (0, 5, 33):
            assert [e.id for e in q.events(f, limit=4, offset=off).events] == expected[off : off + 4]


def test_a_newer_version_that_no_longer_matches_hides_the_key(ch_client: Any, ch_database: str) -> None:
    """`FINAL` semantics: the newest version of a key decides whether it matches. The ten newest
    events (a day apart) are re-stored with another human; a search for the old human must skip
    all ten (the timestamps step finds their old versions first, so its first ask comes back short
    and is widened)."""
    base = [(f"ev-{i:03d}", NOW - timedelta(days=i, minutes=i), {"human_id": "h1"}) for i in range(30)]
    _insert(ch_client, ch_database, base)
    _insert(ch_client, ch_database, [(i, ts, {"human_id": "h2"}) for i, ts, _p in base[:10]])  # newer versions
    q = EventQueries(ch_client, ch_database)
    h1 = _final_order(ch_client, ch_database, "human_id = 'h1'")
    assert h1 == [i for i, _t, _p in base[10:]]
    for limit in (1, 4, 20, 50):
        assert _all_pages(q, EventFilter(human_id="h1"), limit) == h1, limit
    assert _all_pages(q, EventFilter(human_id="h2"), 3) == [i for i, _t, _p in base[:10]]
    assert [e.id for e in q.events(EventFilter(human_id="h1"), limit=2, offset=3).events] == h1[3:5]


def test_past_the_key_budget_pages_read_final_directly(
    ch_client: Any, ch_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny budget, both fallbacks run: deep offsets read windows of `FINAL`, and a timestamps
    step that keeps coming back short reads `FINAL` over the table; both still equal the reference."""
    rows = [(f"ev-{i:03d}", NOW - timedelta(days=i, minutes=i), {"human_id": "h1"}) for i in range(25)]
    for _ in range(4):
        _insert(ch_client, ch_database, rows)
    monkeypatch.setattr(search, "MAX_KEYS", 30)
    q = EventQueries(ch_client, ch_database)
    expected = _final_order(ch_client, ch_database)
    assert [e.id for e in q.events(limit=5, offset=20).events] == expected[20:25]  # 20 + 6 + 8 > 30
    # The timestamps step asks 11 raw rows: with four copies each, the rows step gets 3 of the 10 it
    # needs, 11 * 8 > 30, so the page is read as FINAL over the table.
    assert _all_pages(q, EventFilter(human_id="h1"), 10) == expected


def test_recent_windows_and_timestamps_first_agree_across_time(ch_client: Any, ch_database: str) -> None:
    """Matches spread from minutes to weeks ago: pages are served by the hour window, the day window
    and the timestamps step in turn, and the concatenation equals `FINAL`."""
    times = [NOW - timedelta(minutes=5 * i) for i in range(6)]
    times += [NOW - timedelta(hours=3 + i) for i in range(6)]
    times += [NOW - timedelta(days=2 + i) for i in range(12)]
    rows = [(f"ev-{i:03d}", t, {"decision": "deny" if i % 3 else "allow"}) for i, t in enumerate(times)]
    _insert(ch_client, ch_database, rows[::2])
    _insert(ch_client, ch_database, rows[1::2])
    _insert(ch_client, ch_database, rows[5:9])  # a few redelivered
    q = EventQueries(ch_client, ch_database)
    for where, f in (("1", EventFilter()), ("decision = 'deny'", EventFilter(decision="deny"))):
        expected = _final_order(ch_client, ch_database, where)
        for limit in (1, 2, 5, 9, 30):
            assert _all_pages(q, f, limit) == expected, (where, limit)


def test_many_events_in_one_millisecond_page_exactly(ch_client: Any, ch_database: str) -> None:
    """The timestamps step bounds by the cursor's time, not its id: twelve events sharing one
    millisecond (a cursor inside them) come back as extra rows the rows step drops, and paging
    through them still equals `FINAL`."""
    same = NOW - timedelta(days=3)
    rows = [(f"ev-same-{i:02d}", same, {"human_id": "h1"}) for i in range(12)]
    rows += [(f"ev-{i:03d}", NOW - timedelta(days=i, minutes=i), {"human_id": "h1"}) for i in range(8)]
    _insert(ch_client, ch_database, rows)
    _insert(ch_client, ch_database, rows[:5])  # and a few of them twice
    q = EventQueries(ch_client, ch_database)
    expected = _final_order(ch_client, ch_database)
    assert len(expected) == 20
    for f in (EventFilter(human_id="h1"), EventFilter(session_id="")):
        for limit in (1, 2, 5, 11):
            assert _all_pages(q, f, limit) == expected, (f, limit)
