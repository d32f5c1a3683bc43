"""Scope rules of the runtime governance routes (upstream §7.8) and shared helpers.

* Admins act anywhere; the default namespace for them is the shared catalog `mcp-servers`.
* Everyone else acts only in their teams' namespaces (the default is their first team's), never
  in the shared catalog, and only on servers they *administer*: owner of the team that owns the
  namespace, or the server's creator (label `platform.mcpruntime.org/user-id`).
* Team members *observe* their team's servers (events, observability) without administering.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from functions.api.auth import audit_entry
from functions.api.context import ctx_of
from functions.api.errors import ApiError, bad_request, forbidden, not_found
from functions.api.models import has_ws
from functions.api.policy_sync import PolicySync, sync_server_policy
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal, TeamRef
from mcp_sentinel.kube.resources import SentinelKube
from mcp_sentinel.policy import PolicyError

USER_LABEL = "platform.mcpruntime.org/user-id"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
TRUST = ("low", "medium", "high")
SIDE_EFFECTS = ("read", "write", "destructive")


def check_name(what: str, value: str, *, label: bool = False) -> str:
    """A DNS-1123 subdomain (≤ 253; or a label ≤ 63 for namespaces), else 400."""
    limit, pattern = (63, DNS_LABEL) if label else (253, DNS_SUBDOMAIN)
    if not value:
        raise bad_request(f"{what} is required")
    if len(value) > limit or not pattern.match(value):
        raise bad_request(f"{what} {value[:80]!r} must be a lowercase DNS-1123 name (a-z, 0-9, '-', ≤ {limit})")
    return value


def check_team_id(value: str, where: str = "subject.teamID") -> str:
    """No whitespace anywhere, ≤ 128 characters."""
    if len(value) > 128 or has_ws(value) or "\x00" in value:
        raise bad_request(f"{where} must not contain whitespace and must be at most 128 characters")
    return value


def check_trust(value: str, where: str) -> str:
    """`low|medium|high` (case-insensitive, trimmed) or empty."""
    v = value.strip().lower()
    if v and v not in TRUST:
        raise bad_request(f"{where} must be low, medium, or high")
    return v


def team_for(p: Principal, namespace: str) -> TeamRef | None:
    """The caller's team owning `namespace`, if any."""
    for t in p.teams:
        if t.namespace and t.namespace == namespace:
            return t
    return None


def team_namespaces(p: Principal) -> list[str]:
    """Namespaces of the caller's teams (never the shared catalog)."""
    return [t.namespace for t in p.teams if t.namespace and t.namespace != SHARED_NAMESPACE]


def write_namespace(p: Principal, requested: str) -> str:
    """Where a write lands: validated, defaulted, and allowed for the caller (else 400/403)."""
    ns = requested.strip()
    if not ns:
        ns = SHARED_NAMESPACE if p.is_admin else (team_namespaces(p) or [""])[0]
        if not ns:
            raise bad_request("namespace is required (the caller has no team namespace)")
    check_name("namespace", ns, label=True)
    if p.is_admin:
        return ns
    if ns == SHARED_NAMESPACE or ns not in team_namespaces(p):
        raise forbidden("forbidden namespace")
    return ns


def read_namespaces(p: Principal, requested: str | None, *, shared: bool = False) -> list[str] | None:
    """Namespaces a list may cover (None = every namespace, admins only); 403 outside the caller's.

    `shared` adds the catalog for callers who are not admins (servers and tools are public inside the platform).
    """
    ns = (requested or "").strip()
    if ns:
        check_name("namespace", ns, label=True)
    if p.is_admin:
        return [ns] if ns else None
    allowed = team_namespaces(p) + ([SHARED_NAMESPACE] if shared else [])
    if ns:
        if ns not in allowed:
            raise forbidden("forbidden namespace")
        return [ns]
    return allowed


def administers(p: Principal, namespace: str, server: dict[str, Any]) -> bool:
    """May `p` change this server's access resources (and see their events)?"""
    if p.is_admin:
        return True
    if namespace == SHARED_NAMESPACE or not p.subject:
        return False
    team = team_for(p, namespace)
    if team is not None and team.role == "owner":
        return True
    labels = (server.get("metadata") or {}).get("labels") or {}
    return team is not None and labels.get(USER_LABEL) == p.subject


def observes(p: Principal, namespace: str, server: dict[str, Any]) -> bool:
    """May `p` read this server's telemetry (administrators and members of the owning team)?"""
    return administers(p, namespace, server) or (namespace != SHARED_NAMESPACE and team_for(p, namespace) is not None)


def age(obj: dict[str, Any]) -> str:
    """Creation timestamp `YYYY-MM-DDTHH:MM:SSZ` (upstream calls it age)."""
    raw = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
    if not raw:
        return ""
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return raw
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop empty strings/None/empty collections (keeps False and 0)."""
    return {k: v for k, v in d.items() if v not in ("", None, [], {})}


def meta(obj: dict[str, Any]) -> tuple[str, str]:
    """(name, namespace)."""
    m = obj.get("metadata") or {}
    return str(m.get("name", "")), str(m.get("namespace", ""))


async def sync_policy(request: Request, kube: SentinelKube, namespace: str, server: str) -> dict[str, Any]:
    """Re-render a server's policy after a change; the outcome goes into the response.

    An invalid render (e.g. objects created outside the API) keeps the previous policy and is
    reported as `{"error": ...}` rather than failing the already-stored change.
    """
    s = ctx_of(request).settings
    out_dir = s.policy_output_dir
    from pathlib import Path

    try:
        result: PolicySync = await run_in_threadpool(
            sync_server_policy,
            kube,
            namespace,
            server,
            output_dir=Path(out_dir) if out_dir else None,
            cluster=s.cluster_name,
        )
    except PolicyError as exc:
        return {"error": f"policy render invalid; previous policy kept: {exc}"}
    return result.to_json()


async def audit(request: Request, p: Principal, action: str, resource: str, namespace: str, message: str = "") -> None:
    """Record a governance change in the platform audit log (when the identity store is configured)."""
    store = ctx_of(request).store
    if store is None:
        return
    try:
        await store.audit(
            audit_entry(request, p, action=action, resource=resource, status="success", message=message or None,
                        namespace=namespace)
        )
    except Exception:  # the change is done; a lost audit row must not turn it into an error
        import logging

        logging.getLogger(__name__).exception("audit write failed for %s", resource)


def unknown_server(name: str, namespace: str) -> ApiError:
    """404 for a serverRef that names no MCPServer (the body is well-formed; the server is missing)."""
    return not_found(f'unknown serverRef: MCPServer "{name}" not found in namespace "{namespace}"')


def servers_by_name(items: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Index servers by (namespace, name)."""
    return {(meta(s)[1], meta(s)[0]): s for s in items}
