"""Parsers of query parameters several route modules share (time bounds, bounded integers)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Query

from functions.api.errors import bad_request

MAX_FILTER_LEN = 512
# `parse_time`'s input as the schema publishes it: empty (no bound), a date, or an RFC 3339 date-time.
TimeBound = Annotated[
    str,
    Query(
        max_length=64,
        description="YYYY-MM-DD (a whole day) or an RFC 3339 date-time",
        json_schema_extra={"anyOf": [{"maxLength": 0}, {"format": "date"}, {"format": "date-time"}]},
    ),
]


def int_param(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], else 400."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer", "invalid_query_param") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}", "invalid_query_param")
    return value


def parse_time(name: str, raw: str | None, *, end_of_day: bool = False) -> datetime | None:
    """RFC 3339 or `YYYY-MM-DD` (the whole day for `until`); 400 `invalid_query_param` otherwise."""
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime.combine(day + timedelta(days=1), time(), UTC) - timedelta(microseconds=1) if end_of_day \
                else datetime.combine(day, time(), UTC)
        value = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be RFC 3339 or YYYY-MM-DD", "invalid_query_param") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
