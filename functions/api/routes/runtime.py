"""`/api/runtime/components`, `/api/runtime/actions/restart`, `/api/runtime/observability/*`.

Restarts run as the RestartComponent workflow (Temporal), so a restart survives an API crash
and reports each component's outcome. Observability queries are fixed, allow-listed PromQL
templates keyed by `query_id`: callers never send PromQL, and label values are validated names.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from pydantic import Field

from functions.api.auth import AdminPrincipal, AnyPrincipal, ctx_of
from functions.api.errors import ApiError, bad_request, forbidden, unavailable
from functions.api.routes.governance import Loose
from functions.api.routes.governance_scope import check_name, observes
from functions.api.routes.runtime_deps import Kube, kcall, temporal_client

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/runtime", tags=["runtime"])
PART_OF = "app.kubernetes.io/part-of=mcp-sentinel"
RESTART_WAIT_SECONDS = 60.0
# Sidecar metric names (sidecar/metrics.py); `server`/`namespace` labels identify the gateway.
QUERIES = {
    "up": 'up{{job=~".*gateway.*",server="{server}",namespace="{namespace}"}}',
    "request_rate": 'sum(rate(mcp_gateway_requests_total{{server="{server}",namespace="{namespace}"}}[5m]))',
    "deny_rate": 'sum(rate(mcp_gateway_policy_decisions_total{{server="{server}",namespace="{namespace}",'
    'decision="deny"}}[5m]))',
    "latency_p95": 'histogram_quantile(0.95, sum by (le) (rate(mcp_gateway_request_duration_seconds_bucket'
    '{{server="{server}",namespace="{namespace}"}}[5m])))',
}


class RestartIn(Loose):
    """`{"component": "<name>"}` or `{"all": true}`."""

    component: str = Field(default="", max_length=253)
    all: bool = False


@router.get("/components")
async def components(kube: Kube, _admin: AdminPrincipal) -> dict[str, Any]:
    """Platform Deployments (label `app.kubernetes.io/part-of=mcp-sentinel`) and their readiness."""
    from kubernetes import client as k8s

    apps: Any = k8s.AppsV1Api(kube.api)
    try:
        result = await kcall(lambda: kube.api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            apps.list_deployment_for_all_namespaces(label_selector=PART_OF)))
    except ApiError as exc:
        if exc.status != 404:
            raise
        return {"components": []}
    except Exception as exc:  # the apps API is not served (local API server): nothing to list
        if getattr(exc, "status", 0) != 404:
            raise
        return {"components": []}
    out = []
    for d in result.get("items") or []:
        st = d.get("status") or {}
        want = int((d.get("spec") or {}).get("replicas", 1))
        out.append({
            "name": d["metadata"]["name"], "namespace": d["metadata"].get("namespace", ""), "replicas": want,
            "ready": int(st.get("readyReplicas", 0) or 0) >= want,
        })
    return {"components": out}


@router.post("/actions/restart")
async def restart(request: Request, body: RestartIn, _admin: AdminPrincipal) -> Any:
    """Restart one component or all through the RestartComponent workflow."""
    component = body.component.strip()
    if not body.all and not component:
        raise bad_request("component required")
    client = await temporal_client(ctx_of(request))
    if client is None:
        raise unavailable("Temporal not configured or not reachable (set TEMPORAL_ADDRESS)")
    from workflows import client as wf

    try:
        result = await wf.restart_components(
            client, [component] if component else None, all_components=body.all, wait_seconds=RESTART_WAIT_SECONDS
        )
    except wf.WorkflowFailed as exc:
        if exc.kind == "UnknownComponent":
            raise bad_request("unknown component") from None
        raise ApiError(500, "restart_failed", str(exc)) from None
    except wf.WorkflowTimeout as exc:
        from fastapi.responses import JSONResponse

        return JSONResponse({"success": False, "pending": True, "workflow_id": exc.workflow_id}, status_code=202)
    outcomes = [{"component": o.component, "ok": o.ok, "detail": o.detail} for o in result.outcomes]
    if not result.ok:
        raise ApiError(500, "restart_failed", "; ".join(f"{o['component']}: {o['detail']}" for o in outcomes
                                                       if not o["ok"]) or "restart failed")
    if body.all:
        return {"success": True, "restarted": "all", "outcomes": outcomes}
    return {"success": True, "component": component, "outcomes": outcomes}


async def _observed(kube: Any, p: Any, namespace: str | None, server: str | None) -> tuple[str, str]:
    if not namespace or not server:
        raise bad_request("namespace and server are required", "invalid_query_param")
    check_name("namespace", namespace, label=True)
    check_name("server", server)
    try:
        obj = await kcall(kube.servers.get, namespace, server)
    except ApiError as exc:
        if exc.status != 404:
            raise
        if p.is_admin:
            raise ApiError(404, "not_found", f"MCPServer {namespace}/{server} not found") from None
        raise forbidden("forbidden server") from None
    if not observes(p, namespace, obj):
        raise forbidden("forbidden server")
    return namespace, server


@router.get("/observability/links")
async def links(
    request: Request, kube: Kube, p: AnyPrincipal, namespace: str | None = None, server: str | None = None
) -> dict[str, Any]:
    """Prometheus graph links for the server's allow-listed queries."""
    ns, name = await _observed(kube, p, namespace, server)
    base = ctx_of(request).settings.prometheus_url
    out: dict[str, Any] = {"namespace": ns, "server": name, "links": {}}
    if base:
        out["links"] = {
            qid: f"{base}/graph?{urlencode({'g0.expr': tpl.format(server=name, namespace=ns)})}"
            for qid, tpl in QUERIES.items()
        }
    return out


@router.get("/observability/prometheus/query")
async def prometheus_query(
    request: Request,
    kube: Kube,
    p: AnyPrincipal,
    namespace: str | None = None,
    server: str | None = None,
    query_id: str | None = None,
) -> dict[str, Any]:
    """Run one allow-listed query (`up`, `request_rate`, `deny_rate`, `latency_p95`) for a server."""
    if query_id not in QUERIES:
        raise bad_request(f"query_id must be one of {', '.join(QUERIES)}", "invalid_query_param")
    ns, name = await _observed(kube, p, namespace, server)
    base = ctx_of(request).settings.prometheus_url
    if not base:
        raise unavailable("Prometheus not configured (set PROMETHEUS_URL)")
    query = QUERIES[query_id].format(server=name, namespace=ns)
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            r = await http.get(f"{base}/api/v1/query", params={"query": query})
    except httpx.HTTPError as exc:
        log.warning("prometheus query failed: %s", exc)
        raise ApiError(502, "prometheus_query_failed", "Prometheus did not answer") from None
    try:
        data = r.json()
    except ValueError:
        raise ApiError(502, "prometheus_response_invalid", "Prometheus answered with non-JSON") from None
    if r.status_code >= 400 or not isinstance(data, dict) or data.get("status") != "success":
        raise ApiError(502, "prometheus_query_failed", f"Prometheus answered {r.status_code}")
    return {"namespace": ns, "server": name, "query_id": query_id, "query": query, "prometheus": data}
