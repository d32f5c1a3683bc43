"""`/api/admin/{audit,operations,namespaces}`: the platform audit log and namespace inventory."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter

from functions.api.auth import AdminPrincipal, Store
from functions.api.errors import bad_request

router = APIRouter(prefix="/api/admin", tags=["admin"])
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def parse_time(name: str, raw: str | None, *, end_of_day: bool = False) -> datetime | None:
    """RFC 3339 or `YYYY-MM-DD` (the whole day for `until`); 400 `invalid_query_param` otherwise."""
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime.combine(day + timedelta(days=1), time(), UTC) - timedelta(microseconds=1) if end_of_day \
                else datetime.combine(day, time(), UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be RFC 3339 or YYYY-MM-DD", "invalid_query_param") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filters(user: str | None, since: str | None, until: str | None, limit: str | None) -> dict[str, Any]:
    try:
        n = int(limit) if limit else DEFAULT_LIMIT
    except ValueError:
        raise bad_request("limit must be an integer", "invalid_query_param") from None
    n = max(1, min(MAX_LIMIT, n))
    s, u = parse_time("since", since), parse_time("until", until, end_of_day=True)
    if s and u and s > u:
        raise bad_request("since must not be after until", "invalid_query_param")
    return {"user": user or None, "since": s, "until": u, "limit": n}


@router.get("/audit")
async def audit(
    store: Store,
    _admin: AdminPrincipal,
    user: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: str | None = None,
) -> dict[str, Any]:
    """Platform audit rows, newest first."""
    f = _filters(user, since, until, limit)
    return {"audit_logs": await store.list_audit(**f)}


@router.get("/operations")
async def operations(
    store: Store,
    _admin: AdminPrincipal,
    user: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: str | None = None,
) -> dict[str, Any]:
    """Users, audit rows, image publishes and deployments in one view."""
    f = _filters(user, since, until, limit)
    users = await store.list_users(email=user if user and "@" in user else None)
    shown = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in f.items() if v is not None}
    return {
        "filters": shown,
        "users": [u.to_json() for u in users],
        "audit_logs": await store.list_audit(**f),
        "images": await store.list_audit(**f, image_only=True),
        "deployments": await store.list_audit(**f, deployments_only=True),
    }


@router.get("/namespaces")
async def namespaces(store: Store, _admin: AdminPrincipal) -> dict[str, Any]:
    """Every managed namespace with its owner or team."""
    return {"namespaces": await store.list_namespaces()}
