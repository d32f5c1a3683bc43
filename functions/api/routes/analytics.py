"""Usage analytics and the dashboard summary (§7.4).

`/api/analytics/usage` is admin-only; `/api/user/analytics/usage` scopes non-admins to their
teams' namespaces and servers (the shared catalog `mcp-servers` is never theirs to see). Unlike
upstream, out-of-range `limit`/`window_days` are 400s rather than silently clamped, and admins may
pass several namespaces/team ids (comma-separated or repeated, §11.29).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from functions.api.context import ctx_of
from functions.api.deps import AdminPrincipal, AnyPrincipal, Events, kcall, kube_of, qcall
from functions.api.errors import ApiError, bad_request, forbidden
from functions.api.params import MAX_FILTER_LEN, int_param
from functions.api.redaction import member_usage
from functions.api.services.scope import check_name, check_team_id, team_namespaces
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal
from mcp_sentinel.storage.queries import EventQueries
from mcp_sentinel.storage.usage import UsageQuery, usage

router = APIRouter(tags=["analytics"])
MAX_SCOPE_VALUES = 50


def _many(request: Request, name: str) -> list[str]:
    out: list[str] = []
    for raw in request.query_params.getlist(name):
        out += [v.strip() for v in raw.split(",") if v.strip()]
    if len(out) > MAX_SCOPE_VALUES:
        raise bad_request(f"at most {MAX_SCOPE_VALUES} values of {name}", "invalid_query_param")
    return out


def _text(request: Request, *names: str) -> str:
    for name in names:
        raw = request.query_params.get(name)
        if raw:
            if len(raw) > MAX_FILTER_LEN:
                raise bad_request(f"{names[0]} must be at most {MAX_FILTER_LEN} characters", "invalid_query_param")
            return raw
    return ""


def _base(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {
        "window_days": int_param("window_days", q.get("window_days"), 30, 1, 365),
        "limit": int_param("limit", q.get("limit"), 10, 1, 50),
        "server": _text(request, "server"),
        "decision": _text(request, "decision", "status", "outcome"),
        "tool_name": _text(request, "tool_name", "tool"),
    }


def admin_query(request: Request) -> UsageQuery:
    """Admin semantics: optional namespace/team_id filters, no scoping."""
    namespaces = tuple(check_name("namespace", n, label=True) for n in _many(request, "namespace"))
    teams = tuple(check_team_id(t, "team_id") for t in _many(request, "team_id"))
    return UsageQuery(namespaces=namespaces, team_ids=teams, **_base(request))


def user_query(request: Request, p: Principal) -> UsageQuery:
    """A non-admin's scope: its team namespaces (and those teams' servers); 403 for anything else."""
    requested = _many(request, "namespace")
    mine = team_namespaces(p)
    if requested:
        for ns in requested:
            if ns == SHARED_NAMESPACE or ns not in mine:
                raise forbidden("forbidden namespace")
        namespaces = tuple(requested)
        teams = tuple(t.id for t in p.teams if t.namespace in requested)
    else:
        namespaces = tuple(mine)
        teams = tuple(t.id for t in p.teams)
    return UsageQuery(namespaces=namespaces, team_ids=teams, scoped=True, **_base(request))


async def _usage(events: EventQueries, q: UsageQuery) -> dict[str, Any]:
    return (await qcall(usage, events, q)).to_dict()


@router.get("/api/analytics/usage")
async def admin_usage(request: Request, events: Events, _admin: AdminPrincipal) -> dict[str, Any]:
    """Platform-wide usage over `window_days` (1–365), top `limit` (1–50) per list."""
    return await _usage(events, admin_query(request))


@router.get("/api/user/analytics/usage")
async def user_usage(request: Request, events: Events, p: AnyPrincipal) -> dict[str, Any]:
    """The caller's usage view: admins get the admin view, others their teams' scope."""
    if p.is_admin:
        return await _usage(events, admin_query(request))
    q = user_query(request, p)
    return member_usage(p, await _usage(events, q), q.namespaces)


@router.get("/api/dashboard/summary")
async def dashboard_summary(request: Request, events: Events, _admin: AdminPrincipal) -> dict[str, Any]:
    """Event totals plus MCPServers, active grants and sessions from Kubernetes (when configured)."""
    summary = await qcall(events.dashboard_summary)
    out: dict[str, Any] = {
        "total_events": summary.total_events,
        "active_servers": summary.active_servers,
        "active_grants": 0,
        "active_sessions": 0,
        "latest_source": summary.latest_source,
        "last_event_type": summary.last_event_type,
    }
    if summary.last_event_time:
        out["last_event_time"] = summary.last_event_time
    try:
        kube = kube_of(ctx_of(request))
        servers = await kcall(kube.servers.list, None)
        grants = await kcall(kube.grants.list, None)
        sessions = await kcall(kube.sessions.list, None)
    except ApiError as exc:
        if exc.status != 503:
            raise
        out["kubernetes"] = "unavailable"
        return out
    out["active_servers"] = len(servers) or summary.active_servers
    out["active_grants"] = sum(1 for g in grants if (g.get("spec") or {}).get("disabled") is not True)
    out["active_sessions"] = sum(1 for s in sessions if (s.get("spec") or {}).get("revoked") is not True)
    return out
