"""Parameterised read queries behind the API (upstream §6.4 / §7.4), with typed results.

All user input travels as server-side `{name:Type}` parameters; the only text spliced into SQL is
the validated database name and column names from fixed tables in this module. Every query
reads `events FINAL`, so a redelivered event never shows twice, merged or not.

Deliberate differences from upstream (§11.29): empty lists are `[]`, never `null`; `has_more`
is exact (one extra row is fetched) rather than "the page was full"; pages are keyset cursors on
`(timestamp, event_id)`, so events arriving while a client pages do not shift or repeat rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from mcp_sentinel.storage import rollups, search
from mcp_sentinel.storage.client import validate_database
from mcp_sentinel.storage.schema import EVENTS_TABLE

MAX_LIMIT = 1000
MAX_OFFSET = 100_000
_ROW_COLUMNS = search.ROW_COLUMNS


def rfc3339(ts: datetime) -> str:
    """UTC RFC 3339 with milliseconds and `Z` (stored precision)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class EventRow:
    """One stored event as the API returns it (empty strings omitted by `to_dict`)."""

    id: str
    timestamp: str
    trace_id: str
    source: str
    event_type: str
    server: str
    namespace: str
    team_id: str
    cluster: str
    human_id: str
    agent_id: str
    session_id: str
    decision: str
    tool_name: str
    reason: str
    rpc_method: str
    subject_team_id: str
    payload: Any

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of §6.4 plus `id`, `reason`, `rpc_method`, `subject_team_id`; empty strings left out."""
        return {k: v for k, v in asdict(self).items() if k == "payload" or v != ""}


def _row(values: tuple[Any, ...]) -> EventRow:
    data = dict(zip(_ROW_COLUMNS, values, strict=True))
    try:
        payload: Any = json.loads(data["payload"])
    except (TypeError, ValueError):
        payload = data["payload"]
    return EventRow(
        id=data["event_id"],
        timestamp=rfc3339(data["timestamp"]),
        payload=payload,
        **{k: str(data[k]) for k in _ROW_COLUMNS if k not in ("event_id", "timestamp", "payload")},
    )


@dataclass(frozen=True)
class EventFilter:
    """Exact-match filters (empty = not filtered), ANDed; `since`/`until` bound the timestamp."""

    trace_id: str = ""
    source: str = ""
    event_type: str = ""
    server: str = ""
    namespace: str = ""
    team_id: str = ""
    cluster: str = ""
    human_id: str = ""
    agent_id: str = ""
    session_id: str = ""
    decision: str = ""
    tool_name: str = ""
    reason: str = ""
    rpc_method: str = ""
    subject_team_id: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[list[str], dict[str, Any]]:
        """SQL conditions and their parameters."""
        conds: list[str] = []
        params: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("since", "until") or not value:
                continue
            conds.append(f"{f.name} = {{f_{f.name}:String}}")  # column name from this dataclass only
            params[f"f_{f.name}"] = value
        if self.since is not None:
            conds.append("timestamp >= {f_since:DateTime64(3, 'UTC')}")
            params["f_since"] = self.since
        if self.until is not None:
            conds.append("timestamp < {f_until:DateTime64(3, 'UTC')}")
            params["f_until"] = self.until
        return conds, params


FILTER_NAMES = tuple(f.name for f in fields(EventFilter) if f.name not in ("since", "until"))
"""Query-string names the events endpoint accepts as filters."""


@dataclass(frozen=True)
class Cursor:
    """Keyset position: the last row a page returned."""

    timestamp: datetime
    event_id: str

    def encode(self) -> str:
        """Opaque base64url (unpadded) token."""
        raw = json.dumps({"t": rfc3339(self.timestamp), "id": self.event_id}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a token from `encode`; ValueError("cursor is invalid") otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            obj = json.loads(raw)
            ts = datetime.fromisoformat(obj["t"].replace("Z", "+00:00"))
            event_id = obj["id"]
            if not isinstance(event_id, str) or ts.tzinfo is None:
                raise ValueError
            return cls(ts, event_id)
        except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise ValueError("cursor is invalid") from None


@dataclass(frozen=True)
class EventPage:
    """A page of events, newest first; `next_cursor` is set exactly when more rows exist."""

    events: list[EventRow]
    limit: int
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True)
class CountRow:
    """A (value, count) pair of `sources` / `event_types`."""

    value: str
    count: int


@dataclass(frozen=True)
class DashboardSummary:
    """Event-side numbers of the dashboard summary; `"-"` placeholders when there are no events."""

    total_events: int
    active_servers: int
    latest_source: str
    last_event_type: str
    last_event_time: str | None


class EventQueries:
    """Read queries over `<database>.events` through a clickhouse-connect client.

    Aggregates read the sealed hourly rollup where it is valid and `events FINAL` elsewhere
    (storage/rollups.py); `use_rollups=False` reads `events FINAL` only, the reference the
    rollup path is tested and benchmarked against.
    """

    def __init__(self, client: Any, database: str = "mcp", *, use_rollups: bool = True) -> None:
        self.client = client
        self.database = validate_database(database)
        self.table = f"{self.database}.{EVENTS_TABLE} FINAL"
        self.use_rollups = use_rollups

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.client.query(sql, parameters=params or {}).result_rows)

    def now(self) -> datetime:
        """The server's clock (windows are relative to it, as `now64()` in SQL would be)."""
        ts: datetime = self._rows("SELECT now64(3)")[0][0]
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    def plan(
        self, since: datetime | None, now: datetime | None = None, *, daily: bool = True
    ) -> rollups.ReadPlan | None:
        """What to read from rollups and what raw for `[since, ∞)`; None when rollups are off."""
        if not self.use_rollups:
            return None
        return rollups.plan(self.client, self.database, since, now, daily=daily)

    def source(
        self, read: rollups.ReadPlan | None, since: datetime | None, conds: list[str], params: dict[str, Any]
    ) -> str:
        """`FROM (…)` over rows `bucket, <rollups.DIMENSIONS>, events, last_seen` for `[since, ∞)`.

        Aggregate with `sum(events)` for counts and `max(last_seen)` for the newest timestamp.
        """
        if read is not None:
            return f"FROM ({rollups.source_sql(self.database, read, conds, params)})"
        dims = ", ".join(rollups.DIMENSIONS)
        where = self._raw_where(since, conds, params)
        return (
            f"FROM (SELECT {rollups.HOUR_EXPR} AS bucket, {dims}, count() AS events, max(timestamp) AS last_seen "
            f"FROM {self.table} {where} GROUP BY bucket, {dims})"
        )

    def sessions(
        self, read: rollups.ReadPlan | None, since: datetime | None, conds: list[str], params: dict[str, Any]
    ) -> str:
        """`FROM (…)` over `session_id` rows (repeats possible) for `[since, ∞)` matching `conds`."""
        if read is not None:
            return f"FROM ({rollups.sessions_sql(self.database, read, conds, params)})"
        return f"FROM (SELECT session_id FROM {self.table} {self._raw_where(since, conds, params)})"

    @staticmethod
    def _raw_where(since: datetime | None, conds: list[str], params: dict[str, Any]) -> str:
        bounds = list(conds)
        if since is not None:
            bounds.insert(0, "timestamp >= {src_since:DateTime64(3, 'UTC')}")
            params["src_since"] = since
        return f"WHERE {' AND '.join(bounds)}" if bounds else ""

    def events(
        self,
        filters: EventFilter | None = None,
        *,
        limit: int = 100,
        cursor: Cursor | None = None,
        offset: int = 0,
    ) -> EventPage:
        """Events newest first, filtered; page with `cursor` (preferred) or `offset` (≤ 100000)."""
        limit = min(max(limit, 1), MAX_LIMIT)
        offset = min(max(offset, 0), MAX_OFFSET)
        conds, params = (filters or EventFilter()).where()
        # Ids unique to one session or trace have few rows anywhere in time: no recent windows first.
        ids = filters is not None and bool(filters.trace_id or filters.session_id)
        rows = search.page_rows(
            self.client,
            self.database,
            conds,
            params,
            limit=limit + 1,
            offset=offset,
            cursor=(cursor.timestamp, cursor.event_id) if cursor else None,
            recent_first=not ids,
        )
        events = [_row(r) for r in rows[:limit]]
        has_more = len(rows) > limit
        next_cursor = None
        if has_more:
            last = rows[limit - 1]
            next_cursor = Cursor(last[1] if last[1].tzinfo else last[1].replace(tzinfo=UTC), last[0]).encode()
        return EventPage(events, limit, has_more, next_cursor)

    def server_events(self, namespace: str, server: str, limit: int = 20) -> list[EventRow]:
        """Newest events of one server (limit clamped 1..100)."""
        page = self.events(EventFilter(namespace=namespace, server=server), limit=min(max(limit, 1), 100))
        return page.events

    def _totals(self, params: dict[str, Any]) -> str:
        """`FROM (…)` over rows `source, event_type, server, events` of all time (rollups.totals_sql)."""
        return f"FROM ({rollups.totals_sql(self.database, self.plan(None), params)})"

    def count(self) -> int:
        """Total stored events."""
        params: dict[str, Any] = {}
        src = self._totals(params)
        return int(self._rows(f"SELECT sum(events) {src}", params)[0][0])

    def _counts(self, column: str) -> list[CountRow]:
        params: dict[str, Any] = {}
        src = self._totals(params)
        sql = f"SELECT {column}, sum(events) AS c {src} GROUP BY {column} ORDER BY c DESC, {column}"
        rows = self._rows(sql, params)
        return [CountRow(str(v), int(c)) for v, c in rows]

    def sources(self) -> list[CountRow]:
        """Sources by event count, descending (`[]` on an empty table)."""
        return self._counts("source")

    def event_types(self) -> list[CountRow]:
        """Event types by event count, descending (`[]` on an empty table)."""
        return self._counts("event_type")

    def dashboard_summary(self) -> DashboardSummary:
        """Totals for the dashboard; the API adds grants/sessions from Kubernetes."""
        params: dict[str, Any] = {}
        source = self._totals(params)
        # Per-server sums, then count them: uniqExact over LowCardinality strings costs ~10x more.
        total, servers = self._rows(
            f"SELECT sum(e), countIf(server != '') FROM (SELECT server, sum(events) AS e {source} GROUP BY server)",
            params,
        )[0]
        newest = self.events(limit=1).events
        if not total or not newest:
            return DashboardSummary(0, 0, "-", "-", None)
        last = newest[0]
        return DashboardSummary(int(total), int(servers), last.source or "-", last.event_type or "-", last.timestamp)
