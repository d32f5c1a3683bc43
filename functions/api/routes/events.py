"""Audit event queries (§6.4/§7.4): `/api/events`, `/api/events/filter`, `/api/stats`, `/api/sources`,
`/api/event-types`, `/api/runtime/server-events`.

Every parameter is validated with the seed's ranges and answers 400 `invalid_query_param` with a
clear message; values reach ClickHouse only as bound parameters. Pages are keyset cursors and
`has_more` is exact (§11.29); empty lists are `[]`, never `null`.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request

from functions.api.deps import AdminPrincipal, AnyPrincipal, Events, kcall, qcall, require_kube
from functions.api.errors import ApiError, bad_request, forbidden
from functions.api.models import NamespaceQuery, ServerQuery
from functions.api.params import MAX_FILTER_LEN, int_param, parse_time
from functions.api.redaction import EVENT_COLUMNS, redacted_event
from functions.api.services.scope import administers, check_name, observes
from mcp_sentinel.storage.queries import FILTER_NAMES, MAX_OFFSET, Cursor, EventFilter, EventPage

router = APIRouter(tags=["analytics"])
def event_filter(request: Request) -> EventFilter:
    """Exact-match filters from the query string (unknown names ignored), plus `since`/`until`."""
    q = request.query_params
    values: dict[str, Any] = {}
    for name in FILTER_NAMES:
        raw = q.get(name)
        if raw is None and name == "tool_name":
            raw = q.get("tool")
        if raw is None and name == "decision":
            raw = q.get("status") or q.get("outcome")
        if raw:
            if len(raw) > MAX_FILTER_LEN:
                raise bad_request(f"{name} must be at most {MAX_FILTER_LEN} characters", "invalid_query_param")
            values[name] = raw
    since, until = parse_time("since", q.get("since")), parse_time("until", q.get("until"), end_of_day=True)
    if since and until and since > until:
        raise bad_request("since must not be after until", "invalid_query_param")
    return EventFilter(since=since, until=until, **values)


def page_json(request: Request, page: EventPage) -> dict[str, Any]:
    """`{"events", "meta": {limit, has_more, next_cursor?}, "next"?}`."""
    meta: dict[str, Any] = {"limit": page.limit, "has_more": page.has_more}
    out: dict[str, Any] = {"events": [e.to_dict() for e in page.events], "meta": meta}
    if page.next_cursor:
        meta["next_cursor"] = page.next_cursor
        params = {k: v for k, v in request.query_params.items() if k not in ("cursor", "offset")}
        params["cursor"] = page.next_cursor
        out["next"] = f"{request.url.path}?{urlencode(params)}"
    return out


async def _events(request: Request, events: Events) -> dict[str, Any]:
    q = request.query_params
    limit = int_param("limit", q.get("limit"), 100, 1, 1000)
    offset = int_param("offset", q.get("offset"), 0, 0, MAX_OFFSET)
    cursor = None
    if q.get("cursor"):
        try:
            cursor = Cursor.decode(q["cursor"])
        except ValueError:
            raise bad_request("cursor is invalid", "invalid_query_param") from None
    flt = event_filter(request)
    page = await qcall(events.events, flt, limit=limit, cursor=cursor, offset=offset)
    return page_json(request, page)


@router.get("/api/events")
async def list_events(request: Request, events: Events, _admin: AdminPrincipal) -> dict[str, Any]:
    """Newest events first; accepts every filter too (`limit` 1–1000, `cursor`)."""
    return await _events(request, events)


@router.get("/api/events/filter")
async def filter_events(request: Request, events: Events, _admin: AdminPrincipal) -> dict[str, Any]:
    """Filtered events: trace_id, source, event_type, server, namespace, team_id, cluster, human_id, agent_id,
    session_id, decision, tool_name, reason, rpc_method, subject_team_id, since, until."""
    return await _events(request, events)


@router.get("/api/stats")
async def stats(events: Events, _admin: AdminPrincipal) -> dict[str, Any]:
    """`{"events_total": N}`."""
    return {"events_total": await qcall(events.count)}


@router.get("/api/sources")
async def sources(events: Events, _admin: AdminPrincipal) -> dict[str, Any]:
    """Sources by event count (`[]` when empty, §11.29)."""
    rows = await qcall(events.sources)
    return {"sources": [{"source": r.value, "count": r.count} for r in rows]}


@router.get("/api/event-types")
async def event_types(events: Events, _admin: AdminPrincipal) -> dict[str, Any]:
    """Event types by event count (`[]` when empty)."""
    rows = await qcall(events.event_types)
    return {"event_types": [{"event_type": r.value, "count": r.count} for r in rows]}


@router.get("/api/runtime/server-events")
async def server_events(
    request: Request,
    events: Events,
    p: AnyPrincipal,
    namespace: NamespaceQuery,
    server: ServerQuery,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Newest events of one server (its administrators and team members; limit 1–100, default 20)."""
    if not namespace or not server:
        raise bad_request("namespace and server are required", "invalid_query_param")
    check_name("namespace", namespace, label=True)
    check_name("server", server)
    n = limit
    full = p.is_admin
    if not p.is_admin:
        kube = require_kube(request)
        try:
            obj = await kcall(kube.servers.get, namespace, server)
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise forbidden("forbidden server") from None
        if not observes(p, namespace, obj):
            raise forbidden("forbidden server")
        full = administers(p, namespace, obj)
    rows = await qcall(events.server_events, namespace, server, n)
    if full:
        return {"events": [e.to_dict() for e in rows]}
    return {"events": [redacted_event(e.to_dict()) for e in rows], "redacted": list(EVENT_COLUMNS)}

