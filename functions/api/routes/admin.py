"""`/api/admin/{audit,operations,namespaces}`: the platform audit log and namespace inventory."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from functions.api.deps import AdminPrincipal, Store
from functions.api.models import NO_NUL
from functions.api.params import TimeBound, parse_time

router = APIRouter(prefix="/api/admin", tags=["admin"])
DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def _filters(user: str | None, since: str, until: str, limit: int | None) -> dict[str, Any]:
    # Any integer is a valid limit: it is clamped into 1..MAX_LIMIT. A `since` after `until` is an
    # empty window (no rows), not an error: each bound is valid on its own.
    n = max(1, min(MAX_LIMIT, DEFAULT_LIMIT if limit is None else limit))
    s, u = parse_time("since", since), parse_time("until", until, end_of_day=True)
    return {"user": user or None, "since": s, "until": u, "limit": n}


@router.get("/audit")
async def audit(
    store: Store,
    _admin: AdminPrincipal,
    user: Annotated[str | None, Query(max_length=254, pattern=NO_NUL)] = None,
    since: TimeBound = "",
    until: TimeBound = "",
    limit: int | None = None,
) -> dict[str, Any]:
    """Platform audit rows, newest first."""
    f = _filters(user, since, until, limit)
    return {"audit_logs": await store.list_audit(**f)}


@router.get("/operations")
async def operations(
    store: Store,
    _admin: AdminPrincipal,
    user: Annotated[str | None, Query(max_length=254, pattern=NO_NUL)] = None,
    since: TimeBound = "",
    until: TimeBound = "",
    limit: int | None = None,
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
