"""`/api/runtime/servers`, `/api/runtime/tools`, `/api/deployments`, `/api/admin/deployments`: MCPServers.

Scopes: `public` publishes into the shared catalog `mcp-servers` (admins only); `tenant`/`org`
land in a team namespace of the caller. The creator is recorded in the label
`platform.mcpruntime.org/user-id`, which makes it an administrator of that server. Per-user quota
(`PLATFORM_MCP_ACTIVE_SERVER_LIMIT`) and push cooldown (`PLATFORM_MCP_PUSH_COOLDOWN_SECONDS`)
apply to non-admins; the last push time lives on the servers themselves (annotation), so every
API replica agrees without shared memory.

Listing and reading servers adds each one's live inventory (what the running server serves, probed
directly: `functions.api.inventory`) and its drift from the declared tools; `?live=false` skips
the probe and answers with the declared inventory only.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field, ValidationError

from functions.api.agent_tokens import published_auth
from functions.api.context import ctx_of
from functions.api.deps import AdminPrincipal, AnyPrincipal, Kube, MaybePrincipal, kcall
from functions.api.errors import ApiError, bad_request, forbidden, not_found, unauthorized
from functions.api.models import (
    Loose,
    NamePath,
    NamespaceField,
    NamespaceFilter,
    NamespacePath,
    ServiceName,
)
from functions.api.remote_servers import checked_gateway
from functions.api.server_lifecycle import server_changed
from functions.api.services.access import team_of_namespace
from functions.api.services.inventory import prober
from functions.api.services.scope import (
    USER_LABEL,
    administers,
    age,
    audit,
    check_name,
    check_team_id,
    compact,
    meta,
    read_namespaces,
    sync_policy,
    team_for,
    write_namespace,
)
from functions.api.services.servers import Port, Replicas, RequiredImage, ServerIn, spec_entries, spec_tools
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal
from mcp_sentinel.kube.resources import SentinelKube
from mcp_sentinel.policy_delivery import delete_policy_configmap

router = APIRouter(tags=["servers"])
PUSHED_AT = "platform.mcpruntime.org/pushed-at"
SCOPES = ("tenant", "org", "public")


def server_info(obj: dict[str, Any]) -> dict[str, Any]:
    """A server as the catalog shows it."""
    name, ns = meta(obj)
    spec = obj.get("spec") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {
        "name": name,
        "namespace": ns,
        **compact({"teamID": spec.get("teamID", ""), "description": spec.get("description", "")}),
        "image": spec.get("image", ""),
        **compact({"imageTag": spec.get("imageTag", ""), "createdBy": labels.get(USER_LABEL, "")}),
        "scope": "public" if ns == SHARED_NAMESPACE else "tenant",
        "tools": list(spec.get("tools") or []),
        **compact({"prompts": list(spec.get("prompts") or []), "mcpResources": list(spec.get("mcpResources") or [])}),
        "gateway": {"enabled": (spec.get("gateway") or {}).get("enabled") is True},
        "policy": spec.get("policy") or {},
        "status": obj.get("status") or {},
        "age": age(obj),
    }




async def catalog(request: Request, items: list[dict[str, Any]], live: bool) -> list[dict[str, Any]]:
    """Servers as the catalog shows them, with their live inventory unless `live` is false."""
    infos = [server_info(o) for o in items]
    if not live or not items:
        return infos
    found = await prober(ctx_of(request)).inventories(items)
    return [{**info, **inv} for info, inv in zip(infos, found, strict=True)]


async def _list_servers(kube: SentinelKube, scope: list[str] | None) -> list[dict[str, Any]]:
    if scope is None:
        items: list[dict[str, Any]] = await kcall(kube.servers.list, None)
    else:
        items = []
        for ns in scope:
            try:
                items += await kcall(kube.servers.list, ns)
            except ApiError as exc:
                if exc.status != 404:
                    raise
    return sorted(items, key=lambda s: (meta(s)[1], meta(s)[0]))


def _catalog_scope(request: Request, p: Principal | None, namespace: str | None) -> list[str] | None:
    if p is not None:
        return read_namespaces(p, namespace, shared=True)
    if ctx_of(request).settings.platform_mode != "public":
        raise unauthorized()
    if namespace and namespace != SHARED_NAMESPACE:
        raise forbidden("forbidden namespace")
    return [SHARED_NAMESPACE]


@router.get("/api/runtime/servers")
async def list_servers(
    request: Request, kube: Kube, p: MaybePrincipal, namespace: NamespaceFilter = None, live: bool = True
) -> dict[str, Any]:
    """Servers the caller may see: the shared catalog plus its teams' namespaces (admins: all).

    Each has its declared inventory and, unless `live=false`, `liveInventory` (or null and
    `liveInventoryError`) and `inventoryDrift` from the declared tools.
    """
    items = await _list_servers(kube, _catalog_scope(request, p, namespace))
    s = ctx_of(request).settings
    return {
        "servers": await catalog(request, items, live),
        "publish_policy": {"active_server_limit": s.active_server_limit, "cooldown_seconds": s.push_cooldown_seconds},
    }


@router.get("/api/runtime/servers/{namespace}/{name}")
async def get_server(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: MaybePrincipal, live: bool = True
) -> dict[str, Any]:
    """One server, if visible to the caller (with its live inventory unless `live=false`)."""
    check_name("name", name)
    _catalog_scope(request, p, namespace)
    try:
        obj = await kcall(kube.servers.get, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise not_found(f"MCPServer {namespace}/{name} not found") from None
        raise
    return {"server": (await catalog(request, [obj], live))[0]}


@router.get("/api/runtime/tools")
async def list_tools(
    request: Request, kube: Kube, p: MaybePrincipal, namespace: NamespaceFilter = None
) -> dict[str, Any]:
    """Every tool of every visible server."""
    items = await _list_servers(kube, _catalog_scope(request, p, namespace))
    tools = [
        {"server": meta(s)[0], "namespace": meta(s)[1], **t}
        for s in items
        for t in (s.get("spec") or {}).get("tools") or []
        if isinstance(t, dict)
    ]
    return {"tools": tools}


async def _enforce_quota(request: Request, kube: SentinelKube, p: Principal, replacing: bool) -> None:
    s = ctx_of(request).settings
    if p.is_admin or not p.subject:
        return
    mine = await kcall(kube.servers.list, None, label_selector=f"{USER_LABEL}={p.subject}")
    if s.active_server_limit > 0 and not replacing and len(mine) >= s.active_server_limit:
        raise ApiError(429, "too_many_requests",
                       f"active server limit reached ({s.active_server_limit}); retire a server first")
    if s.push_cooldown_seconds > 0:
        stamps = [str(((m.get("metadata") or {}).get("annotations") or {}).get(PUSHED_AT, "")) for m in mine]
        last = max((datetime.fromisoformat(t) for t in stamps if t), default=None)
        if last is not None:
            next_at = last + timedelta(seconds=s.push_cooldown_seconds)
            wait = (next_at - datetime.now(UTC)).total_seconds()
            if wait > 0:
                raise ApiError(429, "too_many_requests",
                               f"push cooldown: next_allowed_at {next_at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                               {"Retry-After": str(math.ceil(wait))})


@router.post("/api/runtime/servers")
async def apply_server(request: Request, body: ServerIn, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """Create (or with `update: true` replace) an MCPServer; re-renders its policy."""
    scope = body.scope.strip().lower() or ("public" if body.namespace.strip() == SHARED_NAMESPACE else "tenant")
    if scope not in SCOPES:
        raise bad_request("scope must be tenant, org, or public")
    if scope == "public":
        if not p.is_admin:
            raise forbidden("only admins publish to the shared catalog")
        ns = SHARED_NAMESPACE
    else:
        ns = write_namespace(p, body.namespace)
        if not p.is_admin and team_for(p, ns) is None:
            raise forbidden("forbidden namespace")
    name = check_name("name", body.name.strip())
    if len(name) > 63:
        raise bad_request("name must be at most 63 characters (it names a Service)")
    body.gateway = checked_gateway(p, body.image, body.gateway)
    team = check_team_id(body.teamID.strip(), "teamID")
    if not team and ns != SHARED_NAMESPACE:
        team = await team_of_namespace(request, p, ns)  # a server in a team namespace belongs to that team
    try:
        existing: dict[str, Any] | None = await kcall(kube.servers.get, ns, name)
    except ApiError as exc:
        if exc.status != 404:
            raise
        existing = None
    if existing is not None:
        if not body.update:
            raise ApiError(409, "conflict", f"MCPServer {ns}/{name} already exists (send update: true to replace)")
        if not administers(p, ns, existing):
            raise forbidden("forbidden server")
    await _enforce_quota(request, kube, p, replacing=existing is not None)
    spec: dict[str, Any] = compact({
        "image": body.image, "imageTag": body.imageTag.strip(), "description": body.description,
        "teamID": team, "tools": spec_tools(body.tools),
        "prompts": spec_entries("prompts", body.prompts),
        "mcpResources": spec_entries("mcpResources", body.mcpResources),
        "auth": body.auth, "policy": body.policy,
        "session": body.session, "gateway": body.gateway, "analytics": body.analytics,
    })
    spec["auth"] = published_auth(body.auth, name, spec, ctx_of(request).settings.public_base_url)
    if body.port is not None:
        spec["port"] = body.port
    if body.replicas is not None:
        spec["replicas"] = body.replicas
    gw_port = (body.gateway or {}).get("port")
    if (body.gateway or {}).get("enabled") and gw_port is not None and gw_port == spec.get("port", 8088):
        raise bad_request("gateway.port must differ from port")
    labels = {"app": name}
    if p.subject:
        labels[USER_LABEL] = p.subject
    annotations = {PUSHED_AT: datetime.now(UTC).isoformat()}
    if existing is None:
        body_obj = {"metadata": {"name": name, "labels": labels, "annotations": annotations}, "spec": spec}
        obj = await kcall(kube.servers.create, ns, body_obj)
    else:
        m = dict(existing.get("metadata") or {})
        m["labels"] = {**(m.get("labels") or {}), **labels}
        m["annotations"] = {**(m.get("annotations") or {}), **annotations}
        spec |= {k: v for k, v in (existing.get("spec") or {}).items() if k in ("toolPins", "unpinnedTools")}
        obj = await kcall(kube.servers.replace, ns, name, {**existing, "metadata": m, "spec": spec})
    policy = await sync_policy(request, kube, ns, name)
    lifecycle = await server_changed(request, ns, name)
    await audit(request, p, "server_apply", f"server/{ns}/{name}", ns)
    return {"server": server_info(obj), "policy": policy, **lifecycle}


@router.delete("/api/runtime/servers/{namespace}/{name}")
async def retire_server(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Retire a server (its administrators); the policy ConfigMap follows by owner reference."""
    check_name("namespace", namespace, label=True)
    check_name("name", name)
    if not p.is_admin and team_for(p, namespace) is None:
        raise forbidden("forbidden namespace")
    try:
        obj = await kcall(kube.servers.get, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise not_found(f"MCPServer {namespace}/{name} not found") from None
        raise
    if not administers(p, namespace, obj):
        raise forbidden("forbidden server")
    await kcall(kube.servers.delete, namespace, name)
    await kcall(delete_policy_configmap, kube.objects, namespace, name)
    await server_changed(request, namespace, name)
    await audit(request, p, "server_retire", f"server/{namespace}/{name}", namespace)
    return {"success": True, "namespace": namespace, "name": name}


def _deployment(obj: dict[str, Any]) -> dict[str, Any]:
    name, ns = meta(obj)
    spec = obj.get("spec") or {}
    return compact({
        "name": name, "namespace": ns, "image": spec.get("image", ""), "version": spec.get("imageTag", ""),
        "port": spec.get("port"), "replicas": spec.get("replicas", 1), "status": obj.get("status") or {},
        "age": age(obj),
    })


@router.get("/api/deployments")
async def list_deployments(kube: Kube, p: AnyPrincipal, namespace: NamespaceFilter = None) -> dict[str, Any]:
    """Deployments (MCPServers) in the caller's namespaces."""
    items = await _list_servers(kube, read_namespaces(p, namespace))
    return {"deployments": [_deployment(o) for o in items]}


@router.get("/api/admin/deployments")
async def admin_deployments(kube: Kube, _admin: AdminPrincipal) -> dict[str, Any]:
    """Every deployment (admin only)."""
    return {"deployments": [_deployment(o) for o in await _list_servers(kube, None)]}


_KEPT_ON_REDEPLOY = ("description", "teamID", "port", "replicas", "tools", "prompts", "mcpResources", "auth",
                     "policy", "session", "gateway", "analytics")
DNS_OK = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class DeploymentIn(Loose):
    """Deploy body of the seed's `/api/deployments` (an MCPServer in the caller's namespace)."""

    name: ServiceName
    image: RequiredImage
    version: str = Field(default="", max_length=128)
    port: Port | None = None
    replicas: Replicas | None = None
    namespace: NamespaceField = ""


@router.post("/api/deployments")
async def create_deployment(request: Request, body: DeploymentIn, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """Deploy (create or update) an MCP server image: the same rules as `POST /api/runtime/servers`.

    Redeploying an existing server changes only what this body carries (image, version, port,
    replicas): its declared tools, prompts, resources, auth, gateway and policy are kept, so a
    redeploy never silently drops governance. Whether the caller may update it is decided by
    `apply_server` as for any update.
    """
    kept: dict[str, Any] = {}
    name, ns = body.name.strip(), body.namespace.strip()
    # Only in a namespace the caller writes: others get apply_server's 403, never a hint the server exists.
    if name and ns and DNS_OK.match(name) and DNS_OK.match(ns) and (p.is_admin or team_for(p, ns) is not None):
        try:
            existing = await kcall(kube.servers.get, ns, name)
        except ApiError as exc:
            if exc.status not in (403, 404):
                raise
        else:
            spec = existing.get("spec") or {}
            kept = {k: spec[k] for k in _KEPT_ON_REDEPLOY if spec.get(k) is not None}
    try:
        server = ServerIn.model_validate({
            **kept, "name": body.name, "namespace": body.namespace, "image": body.image, "imageTag": body.version,
            "port": body.port if body.port is not None else kept.get("port"),
            "replicas": body.replicas if body.replicas is not None else kept.get("replicas"), "update": True,
        })  # fmt: skip
    except ValidationError:
        raise bad_request(f"MCPServer {ns}/{name} has a spec this route cannot carry over; "
                          "update it with POST /api/runtime/servers") from None
    applied = await apply_server(request, server, kube, p)
    obj = await kcall(kube.servers.get, applied["server"]["namespace"], applied["server"]["name"])
    return {"deployment": _deployment(obj)}


@router.delete("/api/deployments/{namespace}/{name}")
async def delete_deployment(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Remove a deployment: the same rules as retiring the server."""
    return await retire_server(request, namespace, name, kube, p)
