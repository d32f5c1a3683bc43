"""The usage lists over the per-list rollups (storage/usage_rollups.py): each list reads its own table.

Only the final small lists cross to Python: totals, servers, decisions and series come from two
queries over the servers rollup (a few thousand rows per month: sums in one, the distinct-count
state merges in the other, sent at the same time), actors from the
actors rollup, and the top tools from a pruned query (`top_tools`) that aggregates only the
combinations that can still reach the top N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mcp_sentinel.storage import rollups, usage_rollups
from mcp_sentinel.storage.usage_rollups import UsageRollup

Rows = Callable[[str], list[tuple[Any, ...]]]
Summary = tuple[
    tuple[int, int, int, int, int, int], list[tuple[Any, ...]], list[tuple[str, int]], list[tuple[Any, ...]]
]


def source(r: UsageRollup, db: str, p: rollups.ReadPlan, conds: Sequence[str], params: dict[str, Any], *,
           hourly: bool = True, raw_rows: str | None = None, also: Sequence[str] = ()) -> str:  # fmt: skip
    """`r`'s rows for the plan: sealed buckets from its table, the raw ranges from `events FINAL`.

    `hourly=False`: the raw ranges give one row per key (no bucket column), so a key has at most
    one row per sealed bucket plus one. `raw_rows`: see `usage_rollups.source_sql`.
    """
    sealed = rollups._sealed(p, params) if p.seal_ids else None
    raw = rollups._raw_ranges(p, params)
    bucket = rollups.HOUR_EXPR if hourly else None
    return usage_rollups.source_sql(r, db, sealed, raw, conds, raw_bucket=bucket, raw_rows=raw_rows, also=also)


def raw_array(r: UsageRollup, db: str, p: rollups.ReadPlan, conds: Sequence[str], params: dict[str, Any]) -> str:
    """`usage_rollups.raw_array_sql` for the plan's raw ranges."""
    return usage_rollups.raw_array_sql(r, db, rollups._raw_ranges(p, params), conds)


Counts = tuple[tuple[int, int, int], list[tuple[Any, ...]], list[tuple[str, int]], list[tuple[Any, ...]]]
People = tuple[tuple[int, int], dict[tuple[str, str, str], tuple[int, int]]]


def counts(rows: Rows, src: str, window: int) -> Counts:
    """((events, allowed, denied), server rows, decisions, series rows), no distinct counts.

    Server rows: (server, namespace, team_id, events, allowed, denied, last_seen) for every server
    with events (server != ''); decisions sorted; series rows (bucket, e, a, d) ascending. Summing
    is cheap; merging the distinct-count states is not, so `people` does that in its own query
    (sent at the same time) and only for the sets that show them, not for every series bucket.
    """
    bucket_fn = "toStartOfHour" if window <= 2 else "toStartOfDay"
    got = rows(
        "SELECT grouping(server, namespace, team_id, decision, b) AS g, server, namespace, team_id, decision, b, "
        "sum(events), sumIf(events, decision = 'allow'), sumIf(events, decision = 'deny'), max(last_seen) "
        f"FROM (SELECT *, {bucket_fn}(bucket) AS b FROM ({src})) "
        "GROUP BY GROUPING SETS ((server, namespace, team_id), (decision, b), ())"
    )
    servers_mask, decisions_mask = 0b00011, 0b11100  # grouping(): a bit per column NOT grouped on
    totals = (0, 0, 0)
    servers: list[tuple[Any, ...]] = []
    dec: dict[str, int] = {}
    series: dict[Any, list[int]] = {}
    for g, s, ns, team, d, b, e, a, den, last in got:
        if int(g) == servers_mask:
            if s:
                servers.append((str(s), str(ns), str(team), int(e), int(a), int(den), last))
        elif int(g) == decisions_mask:
            key = str(d) or "unknown"
            dec[key] = dec.get(key, 0) + int(e)
            acc = series.setdefault(b, [0, 0, 0])
            acc[0] += int(e)
            acc[1] += int(a)
            acc[2] += int(den)
        else:
            totals = (int(e), int(a), int(den))
    decisions = sorted(dec.items(), key=lambda kv: (-kv[1], kv[0]))
    return totals, servers, decisions, [(b, *v) for b, v in sorted(series.items())]


def people(rows: Rows, src: str) -> People:
    """((unique humans, unique agents) of the window, the same per (server, namespace, team))."""
    got = rows(
        "SELECT grouping(server, namespace, team_id) AS g, server, namespace, team_id, "
        f"uniqExactIfMerge(humans), uniqExactIfMerge(agents) FROM ({src}) "
        "GROUP BY GROUPING SETS ((server, namespace, team_id), ())"
    )
    total = (0, 0)
    per_server: dict[tuple[str, str, str], tuple[int, int]] = {}
    for g, s, ns, team, hs, ags in got:
        if int(g) == 0:
            per_server[(str(s), str(ns), str(team))] = (int(hs), int(ags))
        else:
            total = (int(hs), int(ags))
    return total, per_server


def summary(rows: Rows, src: str, window: int) -> Summary:
    """`counts` then `people`, one after the other: the form for a caller without a pool (older
    `usage.py` revisions call it so, which `bench.scale_ab` loads against this module)."""
    return joined(counts(rows, src, window), people(rows, src))


def joined(c: Counts, p: People) -> Summary:
    """`counts` and `people` joined: ((events, allowed, denied, unique servers, humans, agents),
    server rows (server, namespace, team_id, events, allowed, denied, humans, agents, last_seen),
    decisions, series rows)."""
    (events, allowed, denied), server_rows, decisions, series = c
    (humans, agents), per_server = p
    servers = [(s, ns, team, e, a, d, *per_server.get((s, ns, team), (0, 0)), last)
               for s, ns, team, e, a, d, last in server_rows]  # fmt: skip
    totals = (events, allowed, denied, len({s[0] for s in servers}), humans, agents)
    return totals, servers, decisions, series


def actors(rows: Rows, src: str) -> list[tuple[Any, ...]]:
    """Top actors `(human, agent, events, servers, tools, denied, last_seen)` from the actors rollup."""
    return rows(
        "SELECT human_id, agent_id, sum(events) AS e, uniqExactIfMerge(servers), uniqExactIfMerge(tools), "
        f"sumIf(events, decision = 'deny'), max(last_seen) FROM ({src}) "
        "GROUP BY human_id, agent_id ORDER BY e DESC, human_id, agent_id LIMIT {u_limit:UInt32}"
    )


def actors_of_tools(rows: Rows, src: str) -> list[tuple[Any, ...]]:
    """Top actors from the tools rollup: under a tool filter every matching event is in it."""
    return rows(
        "SELECT human_id, agent_id, sum(events) AS e, uniqExactIf(server, server != ''), "
        f"uniqExactIf(tool_name, tool_name != ''), sum(denied), max(last_seen) FROM ({src}) "
        "WHERE human_id != '' OR agent_id != '' "
        "GROUP BY human_id, agent_id ORDER BY e DESC, human_id, agent_id LIMIT {u_limit:UInt32}"
    )


def top_tools(
    rows: Rows, db: str, p: rollups.ReadPlan, conds: Sequence[str], params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Top `u_limit` tool combinations `(server, tool, human, team, agent, events, denied, last_seen)`.

    Exact top-N without aggregating every combination. Each combination has at most one row per
    sealed bucket plus one for the raw edges: B rows. (1) Any N·B rows among the largest (events ≥
    the N·B-th largest; only the events column is sorted) hold at least N distinct combinations if
    there are that many; their exact totals (grouped by name, rows found by `combo`) give `floor`,
    the N-th largest of them, a lower bound of the true N-th largest total T. (2) A combination
    with total ≥ T ≥ floor has a row of at least floor / B (pigeonhole), so the combinations with
    such a row include the whole top N, ties at T included. (3) Only their rows are aggregated and
    ranked. Skewed usage (a few heavy callers) keeps (2) small; uniform usage degrades to the full
    aggregation, still exact.
    """
    max_rows_per_key = len(p.seal_ids) + 1
    params.update(u_top_rows=params["u_limit"] * max_rows_per_key, u_b=max_rows_per_key)
    names = "server, tool_name, human_id, team_id, agent_id"
    # Each step reads the rollup table directly (`also` filters inside the UNION) and the raw
    # edges (events FINAL) once, as a constant. Three round trips: nesting the steps as scalar
    # subqueries of one query measured 2-4x slower than running them one by one.
    raw = f"WITH ({raw_array(usage_rollups.TOOLS, db, p, conds, params)}) AS raw_tool_rows "

    def src(*also: str) -> str:
        return source(usage_rollups.TOOLS, db, p, conds, params, hourly=False, raw_rows="raw_tool_rows", also=also)

    top_row = (
        f"(SELECT min(events) FROM (SELECT events FROM ({src()}) ORDER BY events DESC LIMIT {{u_top_rows:UInt32}}))"
    )
    c0 = rows(f"{raw}SELECT groupUniqArray(combo) FROM (SELECT combo FROM ({src(f'events >= {top_row}')}) "
              "LIMIT {u_top_rows:UInt32})")[0][0]  # fmt: skip
    params["u_c0"] = list(c0)
    floor_total = rows(
        f"{raw}SELECT if(count() < {{u_limit:UInt32}}, 0, min(t)) FROM (SELECT sum(events) AS t "
        f"FROM ({src('combo IN {u_c0:Array(UInt32)}')}) GROUP BY {names} ORDER BY t DESC LIMIT {{u_limit:UInt32}})"
    )[0][0]
    params["u_floor"] = int(floor_total)
    candidates = f"combo IN (SELECT combo FROM ({src('events * {u_b:UInt64} >= {u_floor:UInt64}')}))"
    return rows(
        f"{raw}SELECT {names}, sum(events) AS e, sum(denied), max(last_seen) FROM ({src(candidates)}) "
        f"GROUP BY {names} ORDER BY e DESC, {names} LIMIT {{u_limit:UInt32}}"
    )
