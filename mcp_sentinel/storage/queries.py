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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_sentinel.storage import rollups
from mcp_sentinel.storage.client import validate_database
from mcp_sentinel.storage.schema import EVENTS_TABLE, MATERIALIZED_COLUMNS

MAX_LIMIT = 1000
MAX_OFFSET = 100_000
# The envelope columns, every payload field the events table materialises (by its schema name), the payload.
_ROW_COLUMNS = ("event_id", "timestamp", "trace_id", "source", "event_type", *(c for c, _t in MATERIALIZED_COLUMNS),
                "payload")  # fmt: skip


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
        if cursor is not None:
            conds.append("(timestamp, event_id) < ({c_ts:DateTime64(3, 'UTC')}, {c_id:String})")
            params.update(c_ts=cursor.timestamp, c_id=cursor.event_id)
        params.update(lim=limit + 1, off=offset)
        # Newest first: try the last hour, then day, before the whole table (`FINAL` over 10M rows
        # costs ~10x an hour's worth). A window is exact once it holds a full page plus the
        # look-ahead row, since every row outside it is older. Ids unique to one session or trace
        # are found through their bloom filters at once.
        newest = f"(SELECT max(timestamp) FROM {self.database}.{EVENTS_TABLE})"
        anchor = "{c_ts:DateTime64(3, 'UTC')}" if cursor else newest
        single = filters is not None and bool(filters.trace_id or filters.session_id)
        for span in (None,) if single else (3600, 86_400, None):
            window = [] if span is None else [f"timestamp >= {anchor} - toIntervalSecond({span})"]
            where = f"WHERE {' AND '.join([*conds, *window])}" if conds or window else ""
            rows = self._rows(
                f"SELECT {', '.join(_ROW_COLUMNS)} FROM {self.table} {where} "
                "ORDER BY timestamp DESC, event_id DESC LIMIT {lim:UInt32} OFFSET {off:UInt32}",
                params,
            )
            if len(rows) > limit:
                break
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


@dataclass(frozen=True)
class UsageQuery:
    """Usage analytics parameters; `scoped` restricts to `namespaces`/`team_ids` (server's team)."""

    window_days: int = 30
    limit: int = 10
    server: str = ""
    decision: str = ""
    tool_name: str = ""
    namespaces: tuple[str, ...] = ()
    team_ids: tuple[str, ...] = ()
    scoped: bool = False


@dataclass(frozen=True)
class UsageTotals:
    """Window totals."""

    events: int = 0
    allowed: int = 0
    denied: int = 0
    unique_servers: int = 0
    unique_humans: int = 0
    unique_agents: int = 0
    unique_sessions: int = 0


@dataclass(frozen=True)
class UsageServer:
    """Per-server usage."""

    server: str
    namespace: str
    team_id: str
    events: int
    allowed: int
    denied: int
    unique_humans: int
    unique_agents: int
    last_seen: str


@dataclass(frozen=True)
class UsageActor:
    """Per (human, agent) usage."""

    human_id: str
    agent_id: str
    events: int
    unique_servers: int
    unique_tools: int
    denied: int
    last_seen: str


@dataclass(frozen=True)
class UsageTool:
    """Per (server, tool, human, team, agent) usage; `team_id` is the server's team."""

    server: str
    tool_name: str
    human_id: str
    team_id: str
    agent_id: str
    events: int
    denied: int
    last_seen: str


@dataclass(frozen=True)
class UsageDecision:
    """Events per decision (`unknown` for empty)."""

    decision: str
    events: int


@dataclass(frozen=True)
class UsageBucket:
    """One series bucket (hourly when window_days ≤ 2, else daily), ascending."""

    bucket: str
    events: int
    allowed: int
    denied: int


@dataclass(frozen=True)
class UsageRecent:
    """A recent event, reduced to its dimensions."""

    timestamp: str
    server: str
    namespace: str
    team_id: str
    human_id: str
    agent_id: str
    session_id: str
    decision: str
    tool_name: str
    event_type: str


@dataclass(frozen=True)
class UsageResponse:
    """Everything `GET /analytics/usage` returns."""

    window_days: int
    totals: UsageTotals = field(default_factory=UsageTotals)
    servers: list[UsageServer] = field(default_factory=list)
    actors: list[UsageActor] = field(default_factory=list)
    tools: list[UsageTool] = field(default_factory=list)
    decisions: list[UsageDecision] = field(default_factory=list)
    series: list[UsageBucket] = field(default_factory=list)
    recent: list[UsageRecent] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """§7.4 shape: `series`/`recent` omitted when empty, empty strings in `recent` omitted."""
        out = asdict(self)
        out["recent"] = [{k: v for k, v in r.items() if v != ""} for r in out["recent"]]
        for key in ("series", "recent"):
            if not out[key]:
                del out[key]
        return out


def usage(queries: EventQueries, q: UsageQuery, *, now: datetime | None = None) -> UsageResponse:
    """Usage analytics over the last `window_days` (clamped 1..365), top `limit` (1..50) per list.

    `now` (default: the server's clock) pins the window's end, for comparing two read paths.
    """
    window = min(max(q.window_days, 1), 365)
    limit = min(max(q.limit, 1), 50)
    filters: dict[str, Any] = {}
    if q.namespaces:
        filters["namespaces"] = list(q.namespaces)
    if q.team_ids:
        filters["team_ids"] = list(q.team_ids)
    for name in ("server", "decision", "tool_name"):
        if getattr(q, name):
            filters[name] = getattr(q, name)
    if q.scoped and not q.namespaces and not q.team_ids:
        return UsageResponse(window_days=window, filters=filters)
    now = now or queries.now()
    since = now - timedelta(days=window)
    conds: list[str] = []
    params: dict[str, Any] = {"u_limit": limit}
    if q.scoped:
        conds.append("(namespace IN {u_ns:Array(String)} OR team_id IN {u_teams:Array(String)})")
        params.update(u_ns=list(q.namespaces), u_teams=list(q.team_ids))
    elif q.namespaces or q.team_ids:
        if q.namespaces:
            conds.append("namespace IN {u_ns:Array(String)}")
            params["u_ns"] = list(q.namespaces)
        if q.team_ids:
            conds.append("team_id IN {u_teams:Array(String)}")
            params["u_teams"] = list(q.team_ids)
    for name in ("server", "decision", "tool_name"):
        if getattr(q, name):
            conds.append(f"{name} = {{u_{name}:String}}")
            params[f"u_{name}"] = getattr(q, name)
    # Aggregates read pre-aggregated rows (rollup + raw edges): counts are sum(events).
    read = queries.plan(since, now, daily=window > 2)  # hourly series need hourly rows
    src = queries.source(read, since, conds, params) + " WHERE 1"
    allow, deny = "sumIf(events, decision = 'allow')", "sumIf(events, decision = 'deny')"

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return queries._rows(sql, params)

    if read is not None:
        totals, servers, actors, decisions, series = usage_one_pass(rows, src, window, limit)
        sess_total = _unique_sessions(queries, read, conds, params, by_tool=bool(q.tool_name))
        totals = replace(totals, unique_sessions=sess_total)
        tools = _top_tools(rows, src)
        recent = _recent(queries, rows, since, conds, params)
        return UsageResponse(window, totals, servers, actors, tools, decisions, series, recent, filters)
    # The raw-table path keeps the original one-query-per-list form: the independent reference the
    # one-pass form (above) is tested against.
    t = rows(
        f"SELECT sum(events), {allow}, {deny}, uniqExactIf(server, server != ''), "
        f"uniqExactIf(human_id, human_id != ''), uniqExactIf(agent_id, agent_id != '') {src}"
    )[0]
    # The sessions rollup is not keyed by tool (it would not compress): a tool filter reads raw.
    sess_read = read if not q.tool_name else None
    # count() of a GROUP BY: exact like uniqExact, and 2-3x faster over a million session ids.
    sess_src = queries.sessions(sess_read, since, conds, params)
    sess = rows(f"SELECT count() FROM (SELECT session_id {sess_src} WHERE session_id != '' GROUP BY session_id)")
    events, allowed, denied, n_servers, n_humans, n_agents = (int(v) for v in t)
    totals = UsageTotals(events, allowed, denied, n_servers, n_humans, n_agents, int(sess[0][0]))
    servers = [
        UsageServer(str(s), str(ns), str(team), int(e), int(a), int(d), int(h), int(ag), rfc3339(ls))
        for s, ns, team, e, a, d, h, ag, ls in rows(
            f"SELECT server, namespace, team_id, sum(events) AS e, {allow}, {deny}, "
            f"uniqExactIf(human_id, human_id != ''), uniqExactIf(agent_id, agent_id != ''), max(last_seen) {src} "
            "AND server != '' "
            "GROUP BY server, namespace, team_id ORDER BY e DESC, server, namespace, team_id LIMIT {u_limit:UInt32}"
        )
    ]
    actors = [
        UsageActor(str(h), str(a), int(e), int(us), int(ut), int(d), rfc3339(ls))
        for h, a, e, us, ut, d, ls in rows(
            f"SELECT human_id, agent_id, sum(events) AS e, uniqExactIf(server, server != ''), "
            f"uniqExactIf(tool_name, tool_name != ''), {deny}, max(last_seen) {src} "
            "AND (human_id != '' OR agent_id != '') GROUP BY human_id, agent_id "
            "ORDER BY e DESC, human_id, agent_id LIMIT {u_limit:UInt32}"
        )
    ]
    tools = [
        UsageTool(str(s), str(tn), str(h), str(team), str(a), int(e), int(d), rfc3339(ls))
        for s, tn, h, team, a, e, d, ls in rows(
            f"SELECT server, tool_name, human_id, team_id, agent_id, sum(events) AS e, {deny}, max(last_seen) {src} "
            "AND tool_name != '' GROUP BY server, tool_name, human_id, team_id, agent_id "
            # A total order: ties must not depend on how the rows were read (rollup or raw).
            "ORDER BY e DESC, server, tool_name, human_id, team_id, agent_id LIMIT {u_limit:UInt32}"
        )
    ]
    decisions = [
        UsageDecision(str(dv), int(e))
        for dv, e in rows(
            f"SELECT if(decision = '', 'unknown', decision) AS dv, sum(events) AS e {src} "
            "GROUP BY dv ORDER BY e DESC, dv"
        )
    ]
    bucket_fn = "toStartOfHour" if window <= 2 else "toStartOfDay"
    series = [
        UsageBucket(rfc3339(b), int(e), int(a), int(d))
        for b, e, a, d in rows(
            f"SELECT {bucket_fn}(bucket) AS b, sum(events), {allow}, {deny} {src} GROUP BY b ORDER BY b"
        )
    ]
    params["u_since"] = since
    bounded = ["timestamp >= {u_since:DateTime64(3, 'UTC')}", *conds]
    raw_src = f"FROM {queries.table} WHERE {' AND '.join(bounded)}"
    recent = [
        UsageRecent(rfc3339(ts), *(str(v) for v in rest))
        for ts, *rest in rows(
            "SELECT timestamp, server, namespace, team_id, human_id, agent_id, session_id, decision, tool_name, "
            f"event_type {raw_src} ORDER BY timestamp DESC, event_id DESC LIMIT {{u_limit:UInt32}}"
        )
    ]
    return UsageResponse(window, totals, servers, actors, tools, decisions, series, recent, filters)


_Rows = Callable[[str], list[tuple[Any, ...]]]
# One GROUPING SETS pass over the usage rows; every list and total is derived from these small
# sets, so the (rollup + raw edge) rows are read once instead of five times, and distinct counts
# are counts of group keys (exact) instead of uniqExact over LowCardinality strings (~10x dearer).
_GROUP_COLUMNS = ("server", "namespace", "team_id", "human_id", "agent_id", "tool_name", "decision", "b")
_SETS = {
    "servers": ("server", "namespace", "team_id", "human_id", "agent_id"),
    "actor_servers": ("human_id", "agent_id", "server"),
    "actor_tools": ("human_id", "agent_id", "tool_name"),
    "decisions": ("decision",),
    "series": ("b",),
}


def _mask(columns: tuple[str, ...]) -> int:
    """`grouping(<_GROUP_COLUMNS>)` of a set: bit set (MSB first) for every column not grouped on."""
    out = 0
    for col in _GROUP_COLUMNS:
        out = (out << 1) | (col not in columns)
    return out


_BY_MASK = {_mask(cols): name for name, cols in _SETS.items()}


def usage_one_pass(
    rows: _Rows, src: str, window: int, limit: int
) -> tuple[UsageTotals, list[UsageServer], list[UsageActor], list[UsageDecision], list[UsageBucket]]:
    """Totals (without sessions), servers, actors, decisions and series from one read of `src`."""
    bucket_fn = "toStartOfHour" if window <= 2 else "toStartOfDay"
    sets = ", ".join(f"({', '.join(cols)})" for cols in _SETS.values())
    got = rows(
        f"SELECT grouping({', '.join(_GROUP_COLUMNS)}) AS g, {', '.join(_GROUP_COLUMNS[:-1])}, b, "
        "sum(events), sumIf(events, decision = 'allow'), sumIf(events, decision = 'deny'), max(last_seen) "
        f"FROM (SELECT *, {bucket_fn}(bucket) AS b {src}) GROUP BY GROUPING SETS ({sets})"
    )
    by: dict[str, list[tuple[Any, ...]]] = {name: [] for name in _SETS}
    for r in got:
        by[_BY_MASK[int(r[0])]].append(r[1:])
    # servers set: (server, namespace, team_id, human_id, agent_id) → e, a, d, last
    srv: dict[tuple[str, str, str], list[Any]] = {}
    humans: set[str] = set()
    agents: set[str] = set()
    server_names: set[str] = set()
    events = allowed = denied = 0
    for s, ns, team, h, ag, _t, _d, _b, e, a, d, last in by["servers"]:
        events, allowed, denied = events + int(e), allowed + int(a), denied + int(d)
        humans.update((h,) if h else ())
        agents.update((ag,) if ag else ())
        if not s:
            continue
        server_names.add(s)
        acc = srv.setdefault((s, ns, team), [0, 0, 0, set(), set(), last])
        acc[0] += int(e)
        acc[1] += int(a)
        acc[2] += int(d)
        acc[3].update((h,) if h else ())
        acc[4].update((ag,) if ag else ())
        acc[5] = max(acc[5], last)
    totals = UsageTotals(events, allowed, denied, len(server_names), len(humans), len(agents), 0)
    top_srv = sorted(srv.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    servers = [
        UsageServer(s, ns, team, e, a, d, len(hs), len(ags), rfc3339(last))
        for (s, ns, team), (e, a, d, hs, ags, last) in top_srv
    ]
    act: dict[tuple[str, str], list[Any]] = {}
    for _s, _ns, _team, h, ag, _t, _d, _b, e, _a, d, last in by["actor_servers"]:
        if not h and not ag:
            continue
        acc = act.setdefault((h, ag), [0, 0, set(), set(), last])
        acc[0] += int(e)
        acc[1] += int(d)
        acc[2].update((_s,) if _s else ())
        acc[4] = max(acc[4], last)
    for _s, _ns, _team, h, ag, t, *_rest in by["actor_tools"]:
        if (h or ag) and t:
            act[(h, ag)][3].add(t)
    top_act = sorted(act.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
    actors = [UsageActor(h, ag, e, len(ss), len(ts), d, rfc3339(last)) for (h, ag), (e, d, ss, ts, last) in top_act]
    dec: dict[str, int] = {}
    for *_k, dv, _b, e, _a, _d, _l in by["decisions"]:
        key = dv or "unknown"
        dec[key] = dec.get(key, 0) + int(e)
    decisions = [UsageDecision(k, e) for k, e in sorted(dec.items(), key=lambda kv: (-kv[1], kv[0]))]
    series = [
        UsageBucket(rfc3339(b), int(e), int(a), int(d))
        for *_k, b, e, a, d, _l in sorted(by["series"], key=lambda r: r[7])
    ]
    return totals, servers, actors, decisions, series


def _unique_sessions(
    queries: EventQueries, read: rollups.ReadPlan, conds: list[str], params: dict[str, Any], *, by_tool: bool
) -> int:
    # A tool filter reads the sessions rollup keyed by tool (rollups.sessions_sql).
    sess_src = rollups.sessions_sql(queries.database, read, conds, params, by_tool=by_tool)
    sql = f"SELECT count() FROM (SELECT session_id FROM ({sess_src}) WHERE session_id != '' GROUP BY session_id)"
    return int(queries._rows(sql, params)[0][0])


def _top_tools(rows: _Rows, src: str) -> list[UsageTool]:
    return [
        UsageTool(str(s), str(tn), str(h), str(team), str(a), int(e), int(d), rfc3339(ls))
        for s, tn, h, team, a, e, d, ls in rows(
            "SELECT server, tool_name, human_id, team_id, agent_id, sum(events) AS e, "
            f"sumIf(events, decision = 'deny'), max(last_seen) {src} "
            "AND tool_name != '' GROUP BY server, tool_name, human_id, team_id, agent_id "
            "ORDER BY e DESC, server, tool_name, human_id, team_id, agent_id LIMIT {u_limit:UInt32}"
        )
    ]


def _recent(
    queries: EventQueries, rows: _Rows, since: datetime, conds: list[str], params: dict[str, Any]
) -> list[UsageRecent]:
    params["u_since"] = since
    bounded = ["timestamp >= {u_since:DateTime64(3, 'UTC')}", *conds]
    return [
        UsageRecent(rfc3339(ts), *(str(v) for v in rest))
        for ts, *rest in rows(
            "SELECT timestamp, server, namespace, team_id, human_id, agent_id, session_id, decision, tool_name, "
            f"event_type FROM {queries.table} WHERE {' AND '.join(bounded)} "
            "ORDER BY timestamp DESC, event_id DESC LIMIT {u_limit:UInt32}"
        )
    ]
