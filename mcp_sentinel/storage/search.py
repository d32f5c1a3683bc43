"""One page of event search, newest first: keys first without `FINAL`, then those rows with it.

`events FINAL … ORDER BY timestamp DESC LIMIT n` makes the engine merge every part over each range
it reads and read every column of whatever it merges; with a filter on a non-key column it cannot
stop early or skip much. A page needs only `offset + limit` keys, so it is read in two steps:

1. **Keys** (no `FINAL`): `(timestamp, event_id)` of the newest `offset + limit + slack` raw rows
   matching the filters (and the cursor). Reads the key and filter columns only, in reverse key
   order with the limit pushed down (or through the bloom filters for ids), stopping early.
2. **Rows** (`FINAL`, exact): the rows of those keys, `FINAL`, with the filters applied again,
   ordered, `LIMIT limit OFFSET offset`. The key set goes in as one array parameter, so the
   primary key index reads only the granules holding them.

Why that equals `FINAL` over the whole table: `FINAL` keeps one row per sort key `(timestamp,
event_id)`, chosen among its stored versions, and filters that row. A key it shows has a stored
version matching the filters, so the key is among the raw matches; the keys step returns every raw
match ranked at or above its last key K. So the rows step sees every `FINAL` match ranked at or
above K and nothing below it. When it returns a full page (`limit` rows after `offset`), every row
ranked ahead of them is above K too: the page is exact. When the keys step returned fewer keys
than asked, it saw every match: exact as well. Otherwise (duplicates not merged yet, or a newer
version of a key no longer matching the filters) the keys step is repeated with 8x the rows, and
past `MAX_KEYS` the page is read the plain way (`FINAL` over the table).

Before the keys step, a page not looking up an id tries `FINAL` over the last hour (or the hour
before the cursor): one round trip that answers the unfiltered and common-filter pages, exact when
it holds the whole page since every row outside it is older. Deep offsets (more keys than
`MAX_KEYS`) read hour, day, then everything that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp_sentinel.storage.schema import EVENTS_TABLE, MATERIALIZED_COLUMNS

ROW_COLUMNS = ("event_id", "timestamp", "trace_id", "source", "event_type", *(c for c, _t in MATERIALIZED_COLUMNS),
               "payload")  # fmt: skip
"""The envelope columns, every payload field the events table materialises (by its schema name), the payload."""

SLACK = 8
"""Extra keys asked for in the first try: room for a few unmerged duplicates without a second one."""

MAX_KEYS = 2_000
"""Largest key set sent to the rows step (one array parameter, ≈60 bytes a key); deeper pages use windows."""

_ORDER = "ORDER BY timestamp DESC, event_id DESC"
_KEYS_TYPE = "Array(Tuple(DateTime64(3, 'UTC'), String))"


def page_rows(
    client: Any,
    database: str,
    conds: Sequence[str],
    params: dict[str, Any],
    *,
    limit: int,
    offset: int,
    recent_first: bool = True,
) -> list[tuple[Any, ...]]:
    """Rows `ROW_COLUMNS` ranked `offset .. offset + limit - 1` among `FINAL` rows matching `conds`.

    `conds` are SQL conditions over the events columns (filters and a keyset cursor), `params`
    their server-side parameters (a cursor's as `c_ts`), `database` already validated.
    `recent_first` tries `FINAL` over the last hour, then day, first: one round trip each, which
    answers the unfiltered and common-filter pages; pass False for ids whose rows are few and
    anywhere in time.
    """
    if offset + limit + SLACK > MAX_KEYS:
        return windowed_rows(client, database, conds, params, limit=limit, offset=offset)
    if recent_first:
        for span in (3600, 86_400):
            rows = _final_rows(client, database, conds, params, limit=limit, offset=offset, span=span)
            if len(rows) == limit:
                return rows
    ask = offset + limit + SLACK
    while ask <= MAX_KEYS:
        keys = _keys(client, database, conds, params, ask=ask)
        if not keys:
            return []
        # Unmerged duplicates repeat a key; the rows step needs each once.
        unique = list(dict.fromkeys((ts, eid) for ts, eid in keys))
        rows = _final_rows(client, database, conds, params, limit=limit, offset=offset, keys=unique)
        if len(rows) == limit or len(keys) < ask:
            return rows
        ask *= 8
    return _final_rows(client, database, conds, params, limit=limit, offset=offset)


def _keys(
    client: Any, database: str, conds: Sequence[str], params: dict[str, Any], *, ask: int
) -> list[tuple[Any, str]]:
    """The newest `ask` raw keys matching `conds` (with repeats while duplicates are unmerged)."""
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    sql = f"SELECT timestamp, event_id FROM {database}.{EVENTS_TABLE} {where} {_ORDER} LIMIT {int(ask)}"
    return [(ts, str(eid)) for ts, eid in client.query(sql, parameters=params).result_rows]


def _window(database: str, params: dict[str, Any], span: int | None) -> list[str]:
    """`timestamp` within `span` seconds of the cursor, or of the newest row (part metadata answers it)."""
    if span is None:
        return []
    anchor = (
        "{c_ts:DateTime64(3, 'UTC')}" if "c_ts" in params else f"(SELECT max(timestamp) FROM {database}.{EVENTS_TABLE})"
    )
    return [f"timestamp >= {anchor} - toIntervalSecond({int(span)})"]


def windowed_rows(
    client: Any, database: str, conds: Sequence[str], params: dict[str, Any], *, limit: int, offset: int
) -> list[tuple[Any, ...]]:
    """The same page as `FINAL` over the last hour, then day, then everything (deep offsets).

    A window is exact once it holds the whole page, since every row outside it is older.
    """
    rows: list[tuple[Any, ...]] = []
    for span in (3600, 86_400, None):
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
    keys: list[tuple[Any, str]] | None = None,
) -> list[tuple[Any, ...]]:
    """The page read with `FINAL`, optionally within `span` seconds of the newest row (or the
    cursor) or among the given keys."""
    table = f"{database}.{EVENTS_TABLE}"
    bounds = [*conds, *_window(database, params, span)]
    if keys is not None:
        # One array parameter: the primary key index turns it into the granules holding them.
        bounds.insert(0, f"(timestamp, event_id) IN {{page_keys:{_KEYS_TYPE}}}")
        params = {**params, "page_keys": keys}
    where = f"WHERE {' AND '.join(bounds)}" if bounds else ""
    sql = f"SELECT {', '.join(ROW_COLUMNS)} FROM {table} FINAL {where} {_ORDER} LIMIT {int(limit)} OFFSET {int(offset)}"
    return list(client.query(sql, parameters=params).result_rows)
