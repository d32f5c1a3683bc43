"""Usage analytics (the Analytics page): each list from the rollup that keys its filters, raw elsewhere.

Split from `queries.py` (event search, counts, pages); exactness under redelivery is the same:
rollups are only read for sealed hours, the rest from `events FINAL`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from mcp_sentinel.storage import rollups, usage_lists, usage_rollups
from mcp_sentinel.storage.queries import EventQueries, rfc3339
from mcp_sentinel.storage.schema import SEAL_LAYOUT


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
    # Hourly series need hourly rows; the usage rollups hold rows of SEAL_LAYOUT seals only.
    read = None
    if queries.use_rollups:
        read = rollups.plan(queries.client, queries.database, since, now, daily=window > 2, min_layout=SEAL_LAYOUT)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return queries._rows(sql, params)

    if read is not None:
        return replace(_from_rollups(queries, q, read, conds, params, window, since), filters=filters)
    src = queries.source(read, since, conds, params) + " WHERE 1"
    allow, deny = "sumIf(events, decision = 'allow')", "sumIf(events, decision = 'deny')"
    # The raw-table path keeps the original one-query-per-list form: the independent reference the
    # rollup form (`_from_rollups`, usage_lists.py) is tested against.
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


def _filtered_columns(q: UsageQuery) -> set[str]:
    """The columns `usage`'s conditions reference (a rollup serves a list only if it keys them all)."""
    cols = {name for name in ("server", "decision", "tool_name") if getattr(q, name)}
    if q.scoped:
        cols |= {"namespace", "team_id"}
    cols |= {"namespace"} if q.namespaces else set()
    cols |= {"team_id"} if q.team_ids else set()
    return cols


def _from_rollups(
    queries: EventQueries, q: UsageQuery, read: rollups.ReadPlan, conds: list[str], params: dict[str, Any],
    window: int, since: datetime,
) -> UsageResponse:  # fmt: skip
    """Every list from the rollup that keys its filters: the per-list usage rollups where they do
    (usage_rollups.py), else the wide rollup (`queries.source`), plus the raw edges of the plan.

    The lists are independent, so they are sent at once: the view costs its slowest list, not the
    sum (a ClickHouse server runs concurrent HTTP requests in parallel, and so does the embedded
    one). Each list gets its own copy of the parameters because building its SQL adds to them.
    """
    db, cols = queries.database, _filtered_columns(q)
    by_tool = bool(q.tool_name)
    limit = int(params["u_limit"])
    tools_ok = usage_rollups.usable(usage_rollups.TOOLS, cols)

    def bound(prm: dict[str, Any]) -> _Rows:
        return lambda sql: queries._rows(sql, prm)

    srv = usage_rollups.TOOL_SERVERS if by_tool else usage_rollups.SERVERS

    def counts(prm: dict[str, Any]) -> usage_lists.Counts:
        return usage_lists.counts(bound(prm), usage_lists.source(srv, db, read, conds, prm), window)

    def people(prm: dict[str, Any]) -> usage_lists.People:
        return usage_lists.people(bound(prm), usage_lists.source(srv, db, read, conds, prm))

    def sessions(prm: dict[str, Any]) -> int:
        return _unique_sessions(queries, read, conds, prm, by_tool=by_tool)

    def actor_rows(prm: dict[str, Any]) -> list[tuple[Any, ...]]:
        if usage_rollups.usable(usage_rollups.ACTORS, cols):
            return usage_lists.actors(bound(prm), usage_lists.source(usage_rollups.ACTORS, db, read, conds, prm))
        if by_tool and tools_ok:
            src = usage_lists.source(usage_rollups.TOOLS, db, read, conds, prm, hourly=False)
            return usage_lists.actors_of_tools(bound(prm), src)
        return _wide_actors(bound(prm), queries.source(read, None, conds, prm) + " WHERE 1")

    def tool_rows(prm: dict[str, Any]) -> list[tuple[Any, ...]]:
        # The pruned top-N pays for itself on long windows of daily rows (30 d: 1.6M rows, 260k
        # combinations here); on a few days, or one tool's rows, the plain aggregation is cheaper.
        if tools_ok and window > 7 and not by_tool:
            return usage_lists.top_tools(bound(prm), db, read, conds, prm)
        return _wide_tools(bound(prm), queries.source(read, None, conds, prm) + " WHERE 1")

    def recent(prm: dict[str, Any]) -> list[UsageRecent]:
        return _recent(queries, bound(prm), since, conds, prm)

    # Slowest first (top tools is three round trips), so the pool never waits on a late start.
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="usage") as pool:
        f_tools = pool.submit(tool_rows, dict(params))
        f_people = pool.submit(people, dict(params))
        f_counts = pool.submit(counts, dict(params))
        f_sessions = pool.submit(sessions, dict(params))
        f_actors = pool.submit(actor_rows, dict(params))
        f_recent = pool.submit(recent, dict(params))
        t, srv_rows, dec, series = usage_lists.joined(f_counts.result(), f_people.result())
        n_sessions = f_sessions.result()
        actor_list, tool_list, recent_list = f_actors.result(), f_tools.result(), f_recent.result()
    servers = [
        UsageServer(s, ns, team, e, a, d, h, ag, rfc3339(ls))
        for s, ns, team, e, a, d, h, ag, ls in sorted(srv_rows, key=lambda r: (-r[3], r[:3]))[:limit]
    ]
    actors = [UsageActor(str(h), str(a), int(e), int(us), int(ut), int(d), rfc3339(ls))
              for h, a, e, us, ut, d, ls in actor_list]  # fmt: skip
    tools = [UsageTool(str(s), str(tn), str(h), str(team), str(a), int(e), int(d), rfc3339(ls))
             for s, tn, h, team, a, e, d, ls in tool_list]  # fmt: skip
    decisions = [UsageDecision(dv, e) for dv, e in dec]
    buckets = [UsageBucket(rfc3339(b), e, a, d) for b, e, a, d in series]
    totals = UsageTotals(*t, n_sessions)
    return UsageResponse(window, totals, servers, actors, tools, decisions, buckets, recent_list)


def _wide_actors(rows: _Rows, src: str) -> list[tuple[Any, ...]]:
    return rows(
        "SELECT human_id, agent_id, sum(events) AS e, uniqExactIf(server, server != ''), "
        f"uniqExactIf(tool_name, tool_name != ''), sumIf(events, decision = 'deny'), max(last_seen) {src} "
        "AND (human_id != '' OR agent_id != '') GROUP BY human_id, agent_id "
        "ORDER BY e DESC, human_id, agent_id LIMIT {u_limit:UInt32}"
    )


def _unique_sessions(
    queries: EventQueries, read: rollups.ReadPlan, conds: list[str], params: dict[str, Any], *, by_tool: bool
) -> int:
    # A tool filter reads the sessions rollup keyed by tool (rollups.sessions_sql).
    sess_src = rollups.sessions_sql(queries.database, read, conds, params, by_tool=by_tool)
    sql = f"SELECT count() FROM (SELECT session_id FROM ({sess_src}) WHERE session_id != '' GROUP BY session_id)"
    return int(queries._rows(sql, params)[0][0])


def _wide_tools(rows: _Rows, src: str) -> list[tuple[Any, ...]]:
    return rows(
        "SELECT server, tool_name, human_id, team_id, agent_id, sum(events) AS e, "
        f"sumIf(events, decision = 'deny'), max(last_seen) {src} "
        "AND tool_name != '' GROUP BY server, tool_name, human_id, team_id, agent_id "
        "ORDER BY e DESC, server, tool_name, human_id, team_id, agent_id LIMIT {u_limit:UInt32}"
    )


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
