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
    (("events", "count()"), ("denied", "countIf(decision = 'deny')"), ("last_seen", "max(timestamp)"),
     ("combo", "toUInt32(cityHash64(server, tool_name, human_id, team_id, agent_id))")),
    "tool_name != ''",
)  # fmt: skip
"""The top-tools list (and actors under a tool filter) with server, team and tool filters:
one row per tool combination and bucket, which the top-N pruning relies on. `combo` hashes the
combination: one 4-byte column to find a combination's rows by (a collision only adds another
combination's rows, which are grouped by name and stay exact, so 32 bits are plenty)."""

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
    r: UsageRollup, db: str, sealed: str | None, raw: str, conds: Sequence[str], *, raw_bucket: str | None,
    raw_rows: str | None = None, also: Sequence[str] = (),
) -> str:  # fmt: skip
    """Rows `[bucket,] <keys>, <values>` of `r`: sealed rows (`sealed`: the seal condition, None for
    none) plus the raw ranges (`raw`) from `events FINAL`, grouped by `raw_bucket` (None: one raw row
    per key, and no bucket column), all filtered by `conds` (columns of `r.keys` only).

    `raw_rows`: the name of a `WITH` alias holding `raw_array_sql`'s result, read instead of
    `events FINAL` (a query that reads the source several times then reads the raw edges once);
    `also`: conditions on any column, value columns too, applied inside both parts (only with
    `raw_rows`), so the sealed part filters its table directly.
    """
    keys = ", ".join(r.keys)
    cols = ", ".join(c for c, _ in r.values)
    head = "bucket, " if raw_bucket else ""
    if raw_rows is not None:
        names = [*(["bucket"] if raw_bucket else []), *r.keys, *(c for c, _ in r.values)]
        picks = ", ".join(f"tupleElement(raw_row, {i + 1}) AS {n}" for i, n in enumerate(names))
        where = " WHERE " + " AND ".join(also) if also else ""
        parts = [f"SELECT * FROM (SELECT {picks} FROM (SELECT arrayJoin({raw_rows}) AS raw_row)){where}"]
    else:
        assert not also, "value conditions need raw_rows"
        parts = [_raw_select(r, db, raw, conds, raw_bucket)]
    if sealed is not None:
        conds_only = "".join(f" AND {c}" for c in [*conds, *also])
        parts.insert(0, f"SELECT {head}{keys}, {cols} FROM {db}.{r.table} WHERE {sealed}{conds_only}")
    return " UNION ALL ".join(parts)


def _raw_select(r: UsageRollup, db: str, raw: str, conds: Sequence[str], raw_bucket: str | None) -> str:
    keys = ", ".join(r.keys)
    aggs = ", ".join(f"{a} AS {c}" for c, a in r.values)
    extra = "".join(f" AND {c}" for c in ([r.where] if r.where else []) + list(conds))
    group = f"{raw_bucket} AS bucket, " if raw_bucket else ""
    return (
        f"SELECT {group}{keys}, {aggs} FROM {db}.{EVENTS_TABLE} FINAL WHERE ({raw}){extra} "
        f"GROUP BY {'bucket, ' if raw_bucket else ''}{keys}"
    )


def raw_array_sql(r: UsageRollup, db: str, raw: str, conds: Sequence[str]) -> str:
    """One value: the raw ranges' rows of `r` (one per key) as an array of tuples, for `raw_rows`."""
    names = ", ".join([*r.keys, *(c for c, _ in r.values)])
    return f"SELECT groupArray(tuple({names})) FROM ({_raw_select(r, db, raw, conds, None)})"


def usable(r: UsageRollup, columns: set[str]) -> bool:
    """Whether every column the query filters on is a key column of `r` (then `conds` apply to its rows)."""
    return columns <= set(r.keys)
