"""One page of event search, newest first: timestamps first without `FINAL`, then rows with it.

`events FINAL … ORDER BY timestamp DESC LIMIT n` merges every part over each range it reads and
reads the 36-byte `event_id` of every granule it touches; with a sparse filter that is most of the
table. A page needs only its own rows, so past the recent windows it is read in two steps:

1. **Timestamps** (no `FINAL`): `timestamp` of the newest `offset + limit + SLACK` raw rows matching
   the filters (at or before the cursor's time). Reads the filter columns and the delta-coded
   timestamps only, never `event_id`; ids go through their bloom filters.
2. **Rows** (`FINAL`, exact): the rows whose `timestamp` is one of those, `FINAL`, with the
   filters and the exact cursor applied again, ordered, `LIMIT limit OFFSET offset`. The set goes
   in as one array parameter; the primary key index turns it into the granules holding them.

Why that equals `FINAL` over the whole table: `FINAL` keeps one row per sort key `(timestamp,
event_id)`, chosen among its stored versions, and filters that row; a row it shows therefore has a
stored version matching the filters, whose timestamp the first step can see. Let T be the oldest
timestamp the first step returned. It returned every matching timestamp newer than T, and T, so
the rows step sees every `FINAL` match at or after T and nothing older: a prefix of the full
answer. A full page from it (`limit` rows after `offset`) is the full answer's page. If the first
step found fewer rows than it asked for, it saw every match: exact as well. Otherwise (unmerged
duplicates, rows at the cursor's own millisecond, or a newer version of a key that no longer
matches the filters) the first step is repeated with 8x the rows, and past `MAX_KEYS` the page
is read the plain way (`FINAL` over the table).

Before that, a page not looking up an id tries `FINAL` over the last hour, then day, before the
newest row or the cursor: one round trip that answers the unfiltered and common-filter pages, exact
when it holds the whole page since every row outside it is older. Deep offsets (more timestamps
than `MAX_KEYS`) read hour, day, then everything that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mcp_sentinel.storage.schema import EVENTS_TABLE, MATERIALIZED_COLUMNS

ROW_COLUMNS = ("event_id", "timestamp", "trace_id", "source", "event_type", *(c for c, _t in MATERIALIZED_COLUMNS),
               "payload")  # fmt: skip
"""The envelope columns, every payload field the events table materialises (by its schema name), the payload."""

SLACK = 8
"""Extra rows asked for in the first try: room for a few unmerged duplicates without a second one."""

MAX_KEYS = 2_000
"""Largest timestamp set sent to the rows step (one array parameter); deeper pages use windows."""

_ORDER = "ORDER BY timestamp DESC, event_id DESC"
_CURSOR = "(timestamp, event_id) < ({c_ts:DateTime64(3, 'UTC')}, {c_id:String})"


def page_rows(
    client: Any,
    database: str,
    conds: Sequence[str],
    params: dict[str, Any],
    *,
    limit: int,
    offset: int,
    cursor: tuple[datetime, str] | None = None,
    recent_first: bool = True,
) -> list[tuple[Any, ...]]:
    """Rows `ROW_COLUMNS` ranked `offset .. offset + limit - 1` among `FINAL` rows matching `conds`.

    `conds` are SQL conditions over the events columns with server-side `params`; `cursor` is the
    keyset position `(timestamp, event_id)` of the previous page's last row; `database` is already
    validated. `recent_first` tries `FINAL` over the last hour and day first; pass False for ids
    whose few rows may lie anywhere in time.
    """
    params = dict(params)
    exact = list(conds)
    if cursor is not None:
        params.update(c_ts=cursor[0], c_id=cursor[1])
        exact.append(_CURSOR)
    if offset + limit + SLACK > MAX_KEYS:
        return _windowed(client, database, exact, params, limit=limit, offset=offset, spans=(3600, 86_400, None))
    if recent_first:
        rows = _windowed(client, database, exact, params, limit=limit, offset=offset, spans=(3600, 86_400))
        if len(rows) == limit:
            return rows
    # The timestamps step bounds by the cursor's time only: its tuple would read every event_id.
    loose = [*conds, "timestamp <= {c_ts:DateTime64(3, 'UTC')}"] if cursor is not None else list(conds)
    ask = offset + limit + SLACK
    while ask <= MAX_KEYS:
        stamps = _timestamps(client, database, loose, params, ask=ask)
        if not stamps:
            return []
        rows = _final_rows(
            client, database, exact, params, limit=limit, offset=offset, stamps=list(dict.fromkeys(stamps))
        )
        if len(rows) == limit or len(stamps) < ask:
            return rows
        ask *= 8
    return _final_rows(client, database, exact, params, limit=limit, offset=offset)


def _timestamps(client: Any, database: str, conds: Sequence[str], params: dict[str, Any], *, ask: int) -> list[Any]:
    """`timestamp` of the newest `ask` raw rows matching `conds` (repeats while duplicates are unmerged)."""
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    sql = f"SELECT timestamp FROM {database}.{EVENTS_TABLE} {where} ORDER BY timestamp DESC LIMIT {int(ask)}"
    return [r[0] for r in client.query(sql, parameters=params).result_rows]


def _windowed(
    client: Any,
    database: str,
    conds: Sequence[str],
    params: dict[str, Any],
    *,
    limit: int,
    offset: int,
    spans: Sequence[int | None],
) -> list[tuple[Any, ...]]:
    """The page as `FINAL` over each window in turn (seconds before the newest row or the cursor;
    None = everything) until one holds it; the last window's rows otherwise."""
    rows: list[tuple[Any, ...]] = []
    for span in spans:
        rows = _final_rows(client, database, conds, params, limit=limit, offset=offset, span=span)
        if len(rows) == limit:
            break
    return rows


def _final_rows(
    client: Any,
    database: str,
    conds: Sequence[str],
    params: dict[str, Any],
    *,
    limit: int,
    offset: int,
    span: int | None = None,
    stamps: list[Any] | None = None,
) -> list[tuple[Any, ...]]:
    """The page read with `FINAL`, within `span` seconds before the newest row (or the cursor)
    and/or at the given timestamps."""
    table = f"{database}.{EVENTS_TABLE}"
    bounds = list(conds)
    if span is not None:
        # max(timestamp) is answered from part metadata.
        anchor = "{c_ts:DateTime64(3, 'UTC')}" if "c_ts" in params else f"(SELECT max(timestamp) FROM {table})"
        bounds.append(f"timestamp >= {anchor} - toIntervalSecond({int(span)})")
    if stamps is not None:
        bounds.insert(0, "timestamp IN {page_ts:Array(DateTime64(3, 'UTC'))}")
        params = {**params, "page_ts": stamps}
    where = f"WHERE {' AND '.join(bounds)}" if bounds else ""
    sql = f"SELECT {', '.join(ROW_COLUMNS)} FROM {table} FINAL {where} {_ORDER} LIMIT {int(limit)} OFFSET {int(offset)}"
    return list(client.query(sql, parameters=params).result_rows)
