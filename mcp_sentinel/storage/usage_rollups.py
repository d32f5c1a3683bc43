"""The per-list usage rollups (migration 4): what each holds, how a seal fills it, how a read unions it.

One `UsageRollup` per table says which keys its rows are grouped by, which rows it keeps, and
the aggregate expression of each value column. Sealing (`seal_inserts`, called by
`rollups.seal_pending` with the other tables) and the raw edges of a read (`source_sql`) use the
same expressions over `events FINAL`, so a sealed row and a raw row of the same events are equal.

Distinct counts are `uniqExactIf` states (merged with `uniqExactIfMerge`): exact, and a day's
state is as small as the distinct values in it, so merging a window's states reads a few
thousand rows where counting distinct keys of the wide rollup read millions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcp_sentinel.storage.schema import (
    EVENTS_TABLE,
    USAGE_ACTORS_TABLE,
    USAGE_SERVERS_TABLE,
    USAGE_TOOL_SERVERS_TABLE,
    USAGE_TOOLS_TABLE,
)


@dataclass(frozen=True)
class UsageRollup:
    """A usage rollup table: rows grouped by `keys`, only events matching `where`, `values` aggregated."""

    table: str
    keys: tuple[str, ...]
    values: tuple[tuple[str, str], ...]  # (column, aggregate over events)
    where: str = ""


_COUNTS = (("events", "count()"), ("last_seen", "max(timestamp)"))
_PEOPLE = (("humans", "uniqExactIfState(human_id, human_id != '')"),
           ("agents", "uniqExactIfState(agent_id, agent_id != '')"))  # fmt: skip

SERVERS = UsageRollup(USAGE_SERVERS_TABLE, ("server", "namespace", "team_id", "decision"), _COUNTS + _PEOPLE)
"""Totals, the servers list, decisions and the series, under every filter but a tool."""
TOOL_SERVERS = UsageRollup(
    USAGE_TOOL_SERVERS_TABLE, ("tool_name", "server", "namespace", "team_id", "decision"), _COUNTS + _PEOPLE,
    "tool_name != ''",
)  # fmt: skip
"""The same under a tool filter (tool first in the key: one tool's rows are read)."""
ACTORS = UsageRollup(
    USAGE_ACTORS_TABLE, ("human_id", "agent_id", "decision"),
    _COUNTS + (("servers", "uniqExactIfState(server, server != '')"),
               ("tools", "uniqExactIfState(tool_name, tool_name != '')")),
    "(human_id != '' OR agent_id != '')",
)  # fmt: skip
"""The actors list with no filter or a decision filter."""
TOOLS = UsageRollup(
    USAGE_TOOLS_TABLE, ("server", "tool_name", "human_id", "team_id", "agent_id"),
    (("events", "count()"), ("denied", "countIf(decision = 'deny')"), ("last_seen", "max(timestamp)")),
    "tool_name != ''",
)  # fmt: skip
"""The top-tools list (and actors under a tool filter) with server, team and tool filters:
one row per tool combination and bucket, which the top-N pruning relies on."""

ALL = (SERVERS, TOOL_SERVERS, ACTORS, TOOLS)


def seal_inserts(db: str, width: int, bucket_expr: str, seal_expr: str, where: str) -> list[str]:
    """`INSERT … SELECT` of every usage rollup for the buckets `where` selects (rollups._seal_inserts)."""
    out = []
    for r in ALL:
        keys = ", ".join(r.keys)
        cols = ", ".join(c for c, _ in r.values)
        aggs = ", ".join(a for _, a in r.values)
        extra = f" AND {r.where}" if r.where else ""
        out.append(
            f"INSERT INTO {db}.{r.table} (width, bucket, seal_id, {keys}, {cols}) "
            f"SELECT {width}, {bucket_expr} AS bk, {seal_expr}, {keys}, {aggs} "
            f"FROM {db}.{EVENTS_TABLE} FINAL {where}{extra} GROUP BY bk, {keys}"
        )
    return out


def source_sql(
    r: UsageRollup, db: str, sealed: str | None, raw: str, conds: Sequence[str], *, raw_bucket: str | None
) -> str:
    """Rows `[bucket,] <keys>, <values>` of `r`: sealed rows (`sealed`: the seal condition, None for
    none) plus the raw ranges (`raw`) from `events FINAL`, grouped by `raw_bucket` (None: one raw row
    per key, and no bucket column), all filtered by `conds` (columns of `r.keys` only)."""
    keys = ", ".join(r.keys)
    cols = ", ".join(c for c, _ in r.values)
    aggs = ", ".join(f"{a} AS {c}" for c, a in r.values)
    extra = "".join(f" AND {c}" for c in ([r.where] if r.where else []) + list(conds))
    head, group = ("bucket, ", f"{raw_bucket} AS bucket, ") if raw_bucket else ("", "")
    parts = [
        f"SELECT {group}{keys}, {aggs} FROM {db}.{EVENTS_TABLE} FINAL WHERE ({raw}){extra} "
        f"GROUP BY {'bucket, ' if raw_bucket else ''}{keys}"
    ]
    if sealed is not None:
        conds_only = "".join(f" AND {c}" for c in conds)
        parts.insert(0, f"SELECT {head}{keys}, {cols} FROM {db}.{r.table} WHERE {sealed}{conds_only}")
    return " UNION ALL ".join(parts)


def usable(r: UsageRollup, columns: set[str]) -> bool:
    """Whether every column the query filters on is a key column of `r` (then `conds` apply to its rows)."""
    return columns <= set(r.keys)
