"""`/api/runtime/components`, `/api/runtime/actions/restart`, `/api/runtime/observability/*`.

Restarts run as the RestartComponent workflow (Temporal), so a restart survives an API crash
and reports each component's outcome. Observability queries are fixed, allow-listed PromQL
templates keyed by `query_id`: callers never send PromQL, and label values are validated names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from functions.api.context import ctx_of
from functions.api.deps import AdminPrincipal, AnyPrincipal, Kube, kcall, require_kube, temporal_client
from functions.api.errors import ApiError, bad_request, forbidden, not_configured, unavailable
from functions.api.models import TRIMMED, Loose, NamespaceQuery, ServerQuery
from functions.api.services.components import local_components
from functions.api.services.scope import check_name, observes
from mcp_sentinel.kube.resources import SentinelKube

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/runtime", tags=["runtime"])
PART_OF = "app.kubernetes.io/part-of=mcp-sentinel"
RESTART_WAIT_SECONDS = 60.0
LOCAL_PROBE_SECONDS = 1.5
LOCAL_REQUEST_PATH = frozenset({"front_door", "ui", "api", "temporal", "worker"})
# Sidecar metric names (sidecar/metrics.py); `server`/`namespace` labels identify the gateway.
QueryId = Literal["up", "request_rate", "deny_rate", "latency_p95"]
QUERIES: dict[str, str] = {
    "up": 'up{{job=~".*gateway.*",server="{server}",namespace="{namespace}"}}',
    "request_rate": 'sum(rate(mcp_gateway_requests_total{{server="{server}",namespace="{namespace}"}}[5m]))',
    "deny_rate": 'sum(rate(mcp_gateway_policy_decisions_total{{server="{server}",namespace="{namespace}",'
    'decision="deny"}}[5m]))',
    "latency_p95": 'histogram_quantile(0.95, sum by (le) (rate(mcp_gateway_request_duration_seconds_bucket'
    '{{server="{server}",namespace="{namespace}"}}[5m])))',
}


ONE_OR_ALL: list[Any] = [
    {"required": ["component"], "properties": {"component": {"minLength": 1}}},
    {"required": ["all"], "properties": {"all": {"const": True}}},
]


class RestartIn(Loose):
    """`{"component": "<name>"}` or `{"all": true}`."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"anyOf": ONE_OR_ALL})

    component: str = Field(default="", max_length=253, pattern=TRIMMED)
    all: bool = False

    @model_validator(mode="after")
    def _one_or_all(self) -> RestartIn:
        if not self.all and not self.component:
            raise ValueError("component required")
        return self


@router.get("/components")
async def components(request: Request, _admin: AdminPrincipal) -> dict[str, Any]:
    """The platform's components and their health.

    In a cluster (`COMPONENTS_BACKEND=kubernetes`): Deployments and Knative Services labelled
    `app.kubernetes.io/part-of=mcp-sentinel`. Locally (`COMPONENTS_BACKEND=local`, set by the
    `api` stack part): the processes `sentinel up` runs, each probed on its health URL or port.
    """
    ctx = ctx_of(request)
    if ctx.settings.components_backend == "local":
        try:
            rows = await run_in_threadpool(local_components(ctx).status, LOCAL_PROBE_SECONDS)
        except ValueError as exc:  # the local stack's run folder or port map is malformed
            raise unavailable(f"local component table unavailable: {exc}") from None
        return {"backend": "local", "components": rows}
    kube = require_kube(request)
    deployments = await _list_or_empty(lambda: _deployments(kube))
    services = await _list_or_empty(lambda: _knative_services(kube))
    return {"backend": "kubernetes", "components": deployments + services}



async def _list_or_empty(fetch: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run a cluster listing; a resource type the API server does not serve lists nothing."""
    try:
        return await kcall(fetch)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return []
    except Exception as exc:  # kubernetes ApiException: the group/kind is not served here
        if getattr(exc, "status", 0) != 404:
            raise
        return []


def _health(ready: bool) -> dict[str, Any]:
    return {"ready": ready, "healthy": ready, "state": "healthy" if ready else "unhealthy"}


def _deployments(kube: SentinelKube) -> list[dict[str, Any]]:
    from kubernetes import client as k8s

    apps: Any = k8s.AppsV1Api(kube.api)
    result = kube.api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
        apps.list_deployment_for_all_namespaces(label_selector=PART_OF))
    out = []
    for d in result.get("items") or []:
        st = d.get("status") or {}
        want = int((d.get("spec") or {}).get("replicas", 1))
        ready = int(st.get("readyReplicas", 0) or 0) >= want
        out.append({
            "name": d["metadata"]["name"], "namespace": d["metadata"].get("namespace", ""), "kind": "Deployment",
            "replicas": want, "detail": f"{int(st.get('readyReplicas', 0) or 0)}/{want} ready", **_health(ready),
        })
    return out


def _knative_services(kube: SentinelKube) -> list[dict[str, Any]]:
    from kubernetes import client as k8s

    custom: Any = k8s.CustomObjectsApi(kube.api)
    result = custom.list_cluster_custom_object("serving.knative.dev", "v1", "services", label_selector=PART_OF)
    out = []
    for svc in result.get("items") or []:
        conds = {c.get("type"): c for c in (svc.get("status") or {}).get("conditions") or []}
        ready_cond = conds.get("Ready") or {}
        ready = ready_cond.get("status") == "True"
        out.append({
            "name": svc["metadata"]["name"], "namespace": svc["metadata"].get("namespace", ""),
            "kind": "KnativeService", "detail": ready_cond.get("message") or (svc.get("status") or {}).get("url", ""),
            **_health(ready),
        })
    return out


@router.post("/actions/restart")
async def restart(request: Request, body: RestartIn, _admin: AdminPrincipal) -> Any:
    """Restart one component or all through the RestartComponent workflow; reports each outcome."""
    component = body.component
    if not body.all and not component:
        raise bad_request("component required")
    ctx = ctx_of(request)
    if not ctx.settings.temporal_address:
        raise not_configured("restarts need Temporal, which is not configured (set TEMPORAL_ADDRESS)")
    client = await temporal_client(ctx)
    if client is None:
        raise unavailable(f"Temporal is not reachable at {ctx.settings.temporal_address}")
    from workflows import client as wf

    names: list[str] | None = [component] if component else None
    skipped: list[str] = []
    if body.all and ctx.settings.components_backend == "local":
        # Locally "all" leaves out the processes carrying this very request and the restart itself
        # (front door, UI, API, Temporal, worker): restarting them mid-request would cut the answer
        # off. Each can still be restarted on its own.
        running = await run_in_threadpool(local_components(ctx).running)
        names = [n for n in running if n not in LOCAL_REQUEST_PATH]
        skipped = [n for n in running if n in LOCAL_REQUEST_PATH]
        if not names:
            raise unavailable("no local components are running (is the stack up under `sentinel up`?)")
    try:
        result = await wf.restart_components(
            client, names, all_components=body.all and names is None, wait_seconds=RESTART_WAIT_SECONDS
        )
    except wf.WorkflowFailed as exc:
        if exc.kind == "UnknownComponent":
            raise bad_request(str(exc) or "unknown component") from None
        raise ApiError(500, "restart_failed", str(exc)) from None
    except wf.WorkflowTimeout as exc:
        return JSONResponse({"success": False, "pending": True, "workflow_id": exc.workflow_id}, status_code=202)
    outcomes = [{"component": o.component, "ok": o.ok, "detail": o.detail} for o in result.outcomes]
    if not result.ok:
        message = "; ".join(f"{o['component']}: {o['detail']}" for o in outcomes if not o["ok"]) or "restart failed"
        # The envelope plus every component's outcome: one failure must not hide what did restart.
        return JSONResponse({"error": "restart_failed", "message": message, "success": False, "outcomes": outcomes,
                             "skipped": skipped}, status_code=500)
    if body.all:
        return {"success": True, "restarted": "all", "outcomes": outcomes, "skipped": skipped}
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
    request: Request, kube: Kube, p: AnyPrincipal, namespace: NamespaceQuery, server: ServerQuery
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
    namespace: NamespaceQuery,
    server: ServerQuery,
    query_id: QueryId,
) -> dict[str, Any]:
    """Run one allow-listed query (`up`, `request_rate`, `deny_rate`, `latency_p95`) for a server."""
    if query_id not in QUERIES:
        raise bad_request(f"query_id must be one of {', '.join(QUERIES)}", "invalid_query_param")
    ns, name = await _observed(kube, p, namespace, server)
    base = ctx_of(request).settings.prometheus_url
    if not base:
        raise not_configured("Prometheus not configured (set PROMETHEUS_URL)")
    query = QUERIES[query_id].format(server=name, namespace=ns)
    import httpx  # only this optional Prometheus route needs an HTTP client (≈80 ms of imports)

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
