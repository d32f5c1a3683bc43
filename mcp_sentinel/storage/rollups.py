"""Hourly and daily rollups of the events table that stay exact under redelivery: sealed buckets.

Why not a materialized view: an MV counts every inserted row, so a redelivered event (same id,
stored twice until the ReplacingMergeTree merges it away) would be counted twice, forever.

Instead the rollup of an hour is computed from `events FINAL` (duplicates already collapsed) and
*sealed* with a fingerprint of that hour's raw rows: `(count(), sum(cityHash64(event_id)))`,
read from an aggregate projection of the events table (part-level, so it is committed atomically
with the rows it describes). A reader uses an hour's rollup only while the hour's current
fingerprint still equals its seal's; any later insert into the hour (a late or redelivered event,
even one with a new payload), a merge that collapses a duplicate, or a TTL deletion changes the
count or the hash sum, and the reader falls back to `events FINAL` for that hour until it is
sealed again. The current hour, the partial hour at a window's start, and future timestamps are
always read raw. A rollup can therefore be stale (slower) but never wrong.

Sealing (`seal_pending`) reads the fingerprints, inserts the rollup rows under a fresh random
`seal_id`, reads the fingerprints again and records a seal only for hours that did not change in
between, so rows inserted while the rollup was computed can never be missed. Readers select
rollup rows by `seal_id`, so rows of an older or abandoned seal are ignored.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_sentinel.storage import usage_rollups
from mcp_sentinel.storage.client import validate_database
from mcp_sentinel.storage.schema import (
    EVENTS_TABLE,
    ROLLUP_LAYOUT,
    ROLLUP_TABLE,
    SEAL_LAYOUT,
    SEALS_TABLE,
    SESSIONS_TABLE,
    TOOL_SESSIONS_TABLE,
    TOTALS_TABLE,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HOUR_EXPR = "toStartOfHour(timestamp)"
"""The projection's grouping expression; queries must use exactly this text to be answered by it."""

DIMENSIONS = ("source", "event_type", "server", "namespace", "team_id", "decision", "tool_name", "human_id", "agent_id")
"""Columns a rollup row is keyed by (besides its bucket): every column the aggregates filter or
group on, so a filter applies to rollup rows and raw rows alike."""
SESSION_DIMENSIONS = ("server", "namespace", "team_id", "decision", "session_id")
TOTALS_DIMENSIONS = ("source", "event_type", "server")
"""The totals rollup's key: what whole-table counts group by (no filters apply to it)."""
"""The sessions rollup's key: filters by server/namespace/team/decision stay exact on it."""

Fingerprint = tuple[int, int]
Bucket = tuple[int, datetime]  # (width in hours, start)
_MASK = (1 << 64) - 1


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def floor_hour(ts: datetime) -> datetime:
    """`ts` truncated to its UTC hour."""
    return _utc(ts).replace(minute=0, second=0, microsecond=0)


def floor_day(ts: datetime) -> datetime:
    """`ts` truncated to its UTC day."""
    return floor_hour(ts).replace(hour=0)


def _fingerprints_sql(db: str, since_hour: datetime | None, params: dict[str, Any]) -> str:
    where = ""
    if since_hour is not None:
        where = f"WHERE {HOUR_EXPR} >= {{fp_since:DateTime('UTC')}}"
        params["fp_since"] = since_hour
    return f"SELECT {HOUR_EXPR} AS h, count(), sum(cityHash64(event_id)) FROM {db}.{EVENTS_TABLE} {where} GROUP BY h"


def hour_fingerprints(client: Any, database: str, since_hour: datetime | None = None) -> dict[datetime, Fingerprint]:
    """`{hour: (rows, id hash sum)}` of the raw rows (duplicates included) from `since_hour` on."""
    params: dict[str, Any] = {}
    rows = client.query(_fingerprints_sql(validate_database(database), since_hour, params), parameters=params)
    return {_utc(h): (int(n), int(s)) for h, n, s in rows.result_rows}


def bucket_fingerprints(hours: dict[datetime, Fingerprint]) -> dict[Bucket, Fingerprint]:
    """Hour fingerprints plus the day fingerprints they add up to (sums mod 2^64)."""
    out: dict[Bucket, Fingerprint] = {(1, h): fp for h, fp in hours.items()}
    for h, (n, s) in hours.items():
        key = (24, floor_day(h))
        n0, s0 = out.get(key, (0, 0))
        out[key] = (n0 + n, (s0 + s) & _MASK)
    return out


def _seals_sql(db: str, since: datetime | None, params: dict[str, Any], min_layout: int) -> str:
    where = f"WHERE layout >= {int(min_layout)}"
    if since is not None:
        where += " AND bucket >= {s_since:DateTime('UTC')}"
        params["s_since"] = since
    return (
        "SELECT width, bucket, argMax(seal_id, (sealed_at, seal_id)), argMax(rows, (sealed_at, seal_id)), "
        f"argMax(hash, (sealed_at, seal_id)) FROM {db}.{SEALS_TABLE} {where} GROUP BY width, bucket"
    )


def _seals(rows: Any) -> dict[Bucket, tuple[int, Fingerprint]]:
    return {(int(w), _utc(b)): (int(sid), (int(n), int(s))) for w, b, sid, n, s in rows}


def current_seals(
    client: Any, database: str, since: datetime | None = None, *, min_layout: int = SEAL_LAYOUT
) -> dict[Bucket, tuple[int, Fingerprint]]:
    """`{(width, bucket): (seal_id, fingerprint)}` of the newest seal of each bucket."""
    params: dict[str, Any] = {}
    sql = _seals_sql(validate_database(database), since, params, min_layout)
    return _seals(client.query(sql, parameters=params).result_rows)


def _plan_inputs(
    client: Any, db: str, since: datetime | None, min_layout: int
) -> tuple[datetime, dict[datetime, Fingerprint], dict[Bucket, tuple[int, Fingerprint]]]:
    """The server's clock, hour fingerprints and seals in one round trip (each costs one under load)."""
    params: dict[str, Any] = {}
    fp = _fingerprints_sql(db, floor_hour(since) if since is not None else None, params)
    seals = _seals_sql(db, floor_day(since) if since is not None else None, params, min_layout)
    now, fps, sealed = client.query(
        f"SELECT now64(3), (SELECT groupArray(tuple(*)) FROM ({fp})), (SELECT groupArray(tuple(*)) FROM ({seals}))",
        parameters=params,
    ).result_rows[0]
    return _utc(now), {_utc(h): (int(n), int(s)) for h, n, s in fps}, _seals(sealed)


@dataclass(frozen=True)
class ReadPlan:
    """Which buckets a query reads from the rollups (by seal id) and which time ranges from `events FINAL`."""

    seal_ids: tuple[int, ...] = ()
    first_bucket: datetime | None = None
    last_bucket: datetime | None = None
    raw_ranges: tuple[tuple[datetime | None, datetime | None], ...] = ()


def plan(
    client: Any, database: str, since: datetime | None, now: datetime | None, *, daily: bool = True,
    min_layout: int = ROLLUP_LAYOUT,
) -> ReadPlan:  # fmt: skip
    """Split `[since, ∞)` (all time when `since` is None) into sealed buckets and raw ranges.

    A whole day inside the window uses its daily seal, else its hours' seals; an hour uses its
    seal when it is closed (before `now`'s hour), wholly inside the window, sealed, and its
    fingerprint unchanged (`daily=False`: hours only, for hourly series). Everything else that
    holds rows is read raw; hours without rows are skipped; adjacent raw hours merge into one range.
    `now=None` uses the server's clock, read in the same round trip as the fingerprints and seals.
    `min_layout`: the oldest seal layout whose rows the caller's tables hold (schema.SEAL_LAYOUT
    for the usage rollups).
    """
    server_now, hours, seals = _plan_inputs(client, validate_database(database), since, min_layout)
    now_hour = floor_hour(now or server_now)
    first_full: datetime | None = None
    if since is not None:
        since = _utc(since)
        first_full = since if since == floor_hour(since) else floor_hour(since) + HOUR
    fps = bucket_fingerprints(hours)
    seal_ids: list[int] = []
    used: list[datetime] = []
    raw: list[tuple[datetime | None, datetime | None]] = []

    def add_raw(lo: datetime | None, hi: datetime | None) -> None:
        if raw and raw[-1][1] is not None and raw[-1][1] == lo:
            raw[-1] = (raw[-1][0], hi)
        else:
            raw.append((lo, hi))

    def valid(key: Bucket) -> int | None:
        seal = seals.get(key)
        return seal[0] if seal is not None and seal[1] == fps.get(key) else None

    if since is not None and first_full is not None and since < first_full:
        add_raw(since, first_full)
    closed = sorted(h for h in hours if h < now_hour and (first_full is None or h >= first_full))
    day_done: set[datetime] = set()
    for hour in closed:
        day = floor_day(hour)
        if day in day_done:
            continue
        if daily and (first_full is None or day >= first_full) and day + DAY <= now_hour:
            sid = valid((24, day))
            if sid is not None:
                seal_ids.append(sid)
                used.append(day)
                day_done.add(day)
                continue
        sid = valid((1, hour))
        if sid is not None:
            seal_ids.append(sid)
            used.append(hour)
        else:
            add_raw(hour, hour + HOUR)
    tail = now_hour if since is None or now_hour >= since else since
    add_raw(tail, None)
    return ReadPlan(tuple(seal_ids), min(used) if used else None, max(used) if used else None, tuple(raw))


def _raw_ranges(p: ReadPlan, params: dict[str, Any]) -> str:
    ranges: list[str] = []
    for i, (lo, hi) in enumerate(p.raw_ranges):
        bounds = []
        if lo is not None:
            bounds.append(f"timestamp >= {{r_lo{i}:DateTime64(3, 'UTC')}}")
            params[f"r_lo{i}"] = lo
        if hi is not None:
            bounds.append(f"timestamp < {{r_hi{i}:DateTime64(3, 'UTC')}}")
            params[f"r_hi{i}"] = hi
        ranges.append("(" + (" AND ".join(bounds) or "1") + ")")
    return " OR ".join(ranges) or "0"


def _sealed(p: ReadPlan, params: dict[str, Any]) -> str:
    params.update(r_seals=list(p.seal_ids), r_b0=p.first_bucket, r_b1=p.last_bucket)
    return (
        "bucket >= {r_b0:DateTime('UTC')} AND bucket <= {r_b1:DateTime('UTC')} AND seal_id IN {r_seals:Array(UInt64)}"
    )


def source_sql(database: str, p: ReadPlan, conds: Sequence[str], params: dict[str, Any]) -> str:
    """Rows `bucket, <DIMENSIONS>, events, last_seen` for the plan, filtered by `conds`.

    `conds` may only reference DIMENSIONS; `params` receives the plan's parameters. Counts are
    `sum(events)`, the newest timestamp `max(last_seen)`; `bucket` is an hour or a day start.
    """
    db = validate_database(database)
    dims = ", ".join(DIMENSIONS)
    extra = "".join(f" AND {c}" for c in conds)
    parts = [
        f"SELECT {HOUR_EXPR} AS bucket, {dims}, count() AS events, max(timestamp) AS last_seen "
        f"FROM {db}.{EVENTS_TABLE} FINAL WHERE ({_raw_ranges(p, params)}){extra} GROUP BY bucket, {dims}"
    ]
    if p.seal_ids:
        parts.insert(
            0, f"SELECT bucket, {dims}, events, last_seen FROM {db}.{ROLLUP_TABLE} WHERE {_sealed(p, params)}{extra}"
        )
    return " UNION ALL ".join(parts)


def totals_sql(database: str, p: ReadPlan | None, params: dict[str, Any]) -> str:
    """Rows `<TOTALS_DIMENSIONS>, events` over all time (no filters); `p=None` reads `events FINAL` only."""
    db = validate_database(database)
    dims = ", ".join(TOTALS_DIMENSIONS)
    raw = "" if p is None else f"WHERE {_raw_ranges(p, params)} "
    parts = [f"SELECT {dims}, count() AS events FROM {db}.{EVENTS_TABLE} FINAL {raw}GROUP BY {dims}"]
    if p is not None and p.seal_ids:
        parts.insert(0, f"SELECT {dims}, events FROM {db}.{TOTALS_TABLE} WHERE {_sealed(p, params)}")
    return " UNION ALL ".join(parts)


def sessions_sql(
    database: str, p: ReadPlan, conds: Sequence[str], params: dict[str, Any], *, by_tool: bool = False
) -> str:
    """Rows `session_id` (repeats possible) of the plan's events matching `conds` (SESSION_DIMENSIONS only;
    with `by_tool`, `tool_name` too)."""
    db = validate_database(database)
    extra = "".join(f" AND {c}" for c in conds)
    parts = [f"SELECT session_id FROM {db}.{EVENTS_TABLE} FINAL WHERE ({_raw_ranges(p, params)}){extra}"]
    if p.seal_ids:
        table = TOOL_SESSIONS_TABLE if by_tool else SESSIONS_TABLE
        parts.insert(0, f"SELECT session_id FROM {db}.{table} WHERE {_sealed(p, params)}{extra}")
    return " UNION ALL ".join(parts)


def _seal_inserts(
    db: str, width: int, buckets: Sequence[datetime], ids: Sequence[int]
) -> list[tuple[str, dict[str, Any]]]:
    expr = HOUR_EXPR if width == 1 else "toStartOfDay(timestamp)"
    params = {"b": list(buckets), "ids": list(ids), "lo": min(buckets), "hi": max(buckets) + width * HOUR}
    where = (
        "WHERE timestamp >= {lo:DateTime64(3, 'UTC')} AND timestamp < {hi:DateTime64(3, 'UTC')} "
        f"AND {expr} IN {{b:Array(DateTime('UTC'))}}"
    )
    seal = "transform(bk, {b:Array(DateTime('UTC'))}, {ids:Array(UInt64)}, toUInt64(0))"
    dims = ", ".join(DIMENSIONS)
    sdims = ", ".join(SESSION_DIMENSIONS)
    tdims = ", ".join(TOTALS_DIMENSIONS)
    return [
        (
            f"INSERT INTO {db}.{TOTALS_TABLE} (width, bucket, seal_id, {tdims}, events) "
            f"SELECT {width}, {expr} AS bk, {seal}, {tdims}, count() FROM {db}.{EVENTS_TABLE} FINAL {where} "
            f"GROUP BY bk, {tdims}",
            params,
        ),
        (
            f"INSERT INTO {db}.{ROLLUP_TABLE} (width, bucket, seal_id, {dims}, events, last_seen) "
            f"SELECT {width}, {expr} AS bk, {seal}, {dims}, count(), max(timestamp) "
            f"FROM {db}.{EVENTS_TABLE} FINAL {where} GROUP BY bk, {dims}",
            params,
        ),
        (
            f"INSERT INTO {db}.{SESSIONS_TABLE} (width, bucket, seal_id, {sdims}) "
            f"SELECT DISTINCT {width}, {expr} AS bk, {seal}, {sdims} FROM {db}.{EVENTS_TABLE} FINAL {where}",
            params,
        ),
        (
            f"INSERT INTO {db}.{TOOL_SESSIONS_TABLE} (width, bucket, seal_id, tool_name, {sdims}) "
            f"SELECT DISTINCT {width}, {expr} AS bk, {seal}, tool_name, {sdims} FROM {db}.{EVENTS_TABLE} FINAL {where}",
            params,
        ),
        *((sql, params) for sql in usage_rollups.seal_inserts(db, width, expr, seal, where)),
    ]


SETTLE = timedelta(minutes=2)
"""How long after its end a bucket counts as closed (stragglers still arriving would only force a reseal)."""


def seal_pending(
    client: Any, database: str, *, now: datetime | None = None, settle: timedelta = SETTLE, per_insert: int = 24,
) -> int:  # fmt: skip
    """Seal every closed hour and day whose rows changed since its seal (or never sealed); returns how many.

    A bucket is closed `settle` after it ends (stragglers still arriving would only force a reseal).
    Rollup rows go in first under fresh seal ids; a seal is recorded only for buckets whose
    fingerprint did not change while their rows were computed.
    """
    db = validate_database(database)
    if now is None:
        now = _utc(client.query("SELECT now64(3)").result_rows[0][0])
    cutoff = _utc(now) - settle
    before = bucket_fingerprints(hour_fingerprints(client, db))
    seals = current_seals(client, db)
    sealed = 0
    for width in (1, 24):
        pending = sorted(
            b for (w, b), fp in before.items()
            if w == width and b + width * HOUR <= cutoff and ((w, b) not in seals or seals[(w, b)][1] != fp)
        )  # fmt: skip
        step = per_insert if width == 1 else max(1, per_insert // 24)
        for i in range(0, len(pending), step):
            chunk = pending[i : i + step]
            ids = [secrets.randbits(63) + 1 for _ in chunk]
            for sql, params in _seal_inserts(db, width, chunk, ids):
                client.command(sql, parameters=params)
            after = bucket_fingerprints(hour_fingerprints(client, db, chunk[0]))
            rows = [
                [width, b, sid, *before[(width, b)], SEAL_LAYOUT]
                for b, sid in zip(chunk, ids, strict=True)
                if after.get((width, b)) == before[(width, b)]
            ]
            if rows:
                names = ["width", "bucket", "seal_id", "rows", "hash", "layout"]
                client.insert(f"{db}.{SEALS_TABLE}", rows, column_names=names)
            sealed += len(rows)
    return sealed
