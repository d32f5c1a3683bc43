"""EventWriter fast path: RowBinary encoding, the recent-id set, warm-up and the `full` dedup mode."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mcp_sentinel.storage.events import EventRecord, EventWriter, RecentIds, RecordEncodingError, encode_rowbinary


def rec(event_id: str, ts: datetime, payload: dict[str, Any] | None = None, **kw: str) -> EventRecord:
    fields = {"trace_id": "", "source": "mcp-gateway", "event_type": "mcp.request"} | kw
    return EventRecord(event_id, ts, payload=json.dumps(payload or {"server": "s"}, ensure_ascii=False), **fields)


def visible(client: Any, db: str, event_id: str) -> list[tuple[Any, ...]]:
    return list(client.query(
        f"SELECT event_id, toUnixTimestamp64Milli(timestamp), trace_id, source, event_type, payload, server "
        f"FROM {db}.events FINAL WHERE event_id = {{e:String}}", parameters={"e": event_id}).result_rows)  # fmt: skip


def test_rowbinary_round_trip_keeps_every_field(ch_client: Any, ch_database: str) -> None:
    # Recent (older rows fall to the TTL); the sub-millisecond part is floored, as before.
    ts = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=891_999)
    payload = {"server": "sérvér-ünï", "args": "日本語 " + "x" * 300, "nested": {"q": "a'b\\c\t\n"}}
    r = rec("ev-é-1", ts, payload, trace_id="ab" * 16, source="src/ü", event_type="mcp.response")
    EventWriter(ch_client, ch_database).write([r])
    ms = int(ts.replace(microsecond=0).timestamp()) * 1000 + 891
    assert visible(ch_client, ch_database, "ev-é-1") == [
        ("ev-é-1", ms, "ab" * 16, "src/ü", "mcp.response", r.payload, "sérvér-ünï")
    ]
    # Lengths ≥ 128 need multi-byte varints; a wrong prefix would shift every later field.
    assert len(r.payload.encode()) > 128


def test_encoding_error_names_the_event_and_field() -> None:
    bad = rec("ok", datetime.now(UTC), source="bad\ud800")
    with pytest.raises(RecordEncodingError) as info:
        encode_rowbinary([rec("fine", datetime.now(UTC)), bad])
    assert (info.value.event_id, info.value.field) == ("ok", "source")


def test_lone_surrogate_in_payload_is_kept_as_json_escape() -> None:
    class Env:
        id, timestamp, trace_id, source, event_type = "e", datetime.now(UTC), "", "s", "t"
        payload = {"text": "a\ud800b", "ok": "é"}

    r = EventRecord.from_envelope(Env())
    assert json.loads(r.payload) == Env.payload and r.payload.isascii()
    encode_rowbinary([r])  # must not raise


def test_recent_ids_forgets_the_oldest_first() -> None:
    recent = RecentIds(3)
    recent.add(["a", "b", "c"])
    recent.add(["a", "d"])  # "a" is young again, so "b" goes
    assert [i for i in "abcd" if i in recent] == ["a", "c", "d"] and len(recent) == 3
    off = RecentIds(0)
    off.add(["x"])
    assert "x" not in off
    with pytest.raises(ValueError):
        RecentIds(-1)


def test_a_restarted_writer_recognises_recent_ids_after_warm_up(ch_client: Any, ch_database: str) -> None:
    now = datetime.now(UTC)
    # w-2 is a replayed backlog event (old timestamp, stored just now); w-5 is older than max_age.
    EventWriter(ch_client, ch_database).write(
        [rec("w-1", now), rec("w-2", now - timedelta(hours=3)), rec("w-5", now - timedelta(days=2))]
    )
    fresh = EventWriter(ch_client, ch_database)  # a new process: empty recent set
    assert fresh.warm(timedelta(minutes=15), max_age=timedelta(days=1)) == 2
    assert "w-2" in fresh.recent and "w-5" not in fresh.recent
    assert EventWriter(ch_client, ch_database).warm(timedelta(seconds=0)) == 0  # nothing stored in the future
    # Same id with a different time (a producer re-sending it) is still a duplicate.
    again = fresh.write([rec("w-1", now + timedelta(seconds=5)), rec("w-3", now)])
    assert (again.inserted, again.duplicates) == (("w-3",), ("w-1",))
    assert len(visible(ch_client, ch_database, "w-1")) == 1


def test_redelivery_beyond_the_recent_set_is_still_one_visible_row(ch_client: Any, ch_database: str) -> None:
    now = datetime.now(UTC)
    forgetful = EventWriter(ch_client, ch_database, recent_ids=0)
    for _ in range(3):  # Kafka redelivery: same id, same time, writer remembers nothing
        assert forgetful.write([rec("r-1", now)]).inserted == ("r-1",)
    assert len(visible(ch_client, ch_database, "r-1")) == 1
    raw = ch_client.query(f"SELECT count() FROM {ch_database}.events WHERE event_id = 'r-1'").result_rows[0][0]
    assert raw == 3  # physically present until a merge: FINAL is what hides them


def test_full_mode_asks_the_table(ch_client: Any, ch_database: str) -> None:
    now = datetime.now(UTC)
    EventWriter(ch_client, ch_database, recent_ids=0).write([rec("f-1", now)])
    strict = EventWriter(ch_client, ch_database, recent_ids=0, dedup="full")
    res = strict.write([rec("f-1", now + timedelta(days=1)), rec("f-2", now), rec("f-2", now)])
    assert (res.inserted, res.duplicates) == (("f-2",), ("f-2", "f-1"))
    assert len(visible(ch_client, ch_database, "f-1")) == 1
    assert strict.existing_ids([rec("x'; DROP TABLE events; --", now), rec("f-1", now)]) == {"f-1"}
    with pytest.raises(ValueError, match="dedup"):
        EventWriter(ch_client, ch_database, dedup="sometimes")


def test_failed_insert_is_not_remembered(ch_client: Any, ch_database: str) -> None:
    writer = EventWriter(ch_client, ch_database)
    with pytest.raises(RecordEncodingError):
        writer.write([rec("p-1", datetime.now(UTC)), rec("p-2\udc80", datetime.now(UTC))])
    assert "p-1" not in writer.recent  # the whole batch failed, so a retry must insert it
    assert writer.write([rec("p-1", datetime.now(UTC))]).inserted == ("p-1",)
