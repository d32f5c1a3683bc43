"""`/api/admin/{audit,operations,namespaces}`: the platform audit log and namespace inventory."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from functions.api.deps import AdminPrincipal, Store
from functions.api.errors import bad_request
from functions.api.params import parse_time

router = APIRouter(prefix="/api/admin", tags=["admin"])
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


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
