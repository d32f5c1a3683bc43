"""Usage analytics (the Analytics page): one read of the usage rows, over sealed rollups where they exist.

Split from `queries.py` (event search, counts, pages); exactness under redelivery is the same:
rollups are only read for sealed hours, the rest from `events FINAL`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from mcp_sentinel.storage import rollups
from mcp_sentinel.storage.queries import EventQueries, rfc3339


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
