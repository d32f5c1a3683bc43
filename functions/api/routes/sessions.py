"""`/api/runtime/sessions[...]`: MCPAgentSession CRUD (apply is admin-only), revoke/unrevoke.

Every change re-renders the server's policy; a session with `expiresAt` gets its SessionExpiry
timer started (or moved) when Temporal is configured, and revoke/delete signal it (best effort:
the PolicyReconcile schedule is the safety net).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from functions.api.deps import AnyPrincipal, Kube, kcall
from functions.api.errors import ApiError, bad_request, forbidden, not_found
from functions.api.models import (
    DateTimeOrEmpty,
    Loose,
    Name,
    NamePath,
    NamespaceField,
    NamespaceFilter,
    NamespacePath,
    TrustOrEmpty,
)
from functions.api.services.access import (
    ServerRefIn,
    SubjectIn,
    access_identity,
    default_team,
    load_owned,
    replaced_server,
    server_of,
    subject_of,
    target_server,
    upsert,
    visible,
)
from functions.api.services.scope import (
    age,
    audit,
    check_name,
    check_trust,
    compact,
    sync_policy,
    write_namespace,
)
from functions.api.services.sessions import notify_expiry
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.kube.resources import SentinelKube

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/runtime", tags=["governance"])


class SessionIn(Loose):
    """Create-or-update body of a session (admin only)."""

    name: Name
    namespace: NamespaceField = ""
    serverRef: ServerRefIn
    subject: SubjectIn
    consentedTrust: TrustOrEmpty = ""
    expiresAt: DateTimeOrEmpty = ""
    revoked: bool | None = None
    policyVersion: str = Field(default="", max_length=64)


class RevokedPatch(Loose):
    """PATCH body of a session."""

    revoked: bool


def session_summary(obj: dict[str, Any]) -> dict[str, Any]:
    """Session JSON of §7.8."""
    spec = obj.get("spec") or {}
    return {
        **access_identity(obj),
        "consentedTrust": spec.get("consentedTrust") or "low",
        "revoked": spec.get("revoked") is True,
        **compact({"expiresAt": spec.get("expiresAt", ""), "policyVersion": spec.get("policyVersion", "")}),
        "age": age(obj),
    }


def parse_expiry(raw: str) -> str:
    """RFC 3339 → normalised UTC `...Z` (second precision), else 400."""
    value = raw.strip()
    try:
        ts = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request("expiresAt must be an RFC 3339 date-time") from None
    if ts.tzinfo is None or "T" not in value.upper():
        raise bad_request("expiresAt must be an RFC 3339 date-time with a timezone")
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC form in Python: keep its offset
        pass
    # isoformat pads the year to four digits (strftime's %Y does not on glibc: "378-01-10").
    return ts.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@router.get("/sessions")
async def list_sessions(kube: Kube, p: AnyPrincipal, namespace: NamespaceFilter = None) -> dict[str, Any]:
    """Sessions the caller may see (`?namespace=` narrows)."""
    items = await visible(kube, p, kube.sessions, namespace)
    return {"sessions": [session_summary(s) for s in items]}


@router.post("/sessions")
async def apply_session(request: Request, body: SessionIn, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """Create or update a session (admin only; agents use the adapter route)."""
    if not p.is_admin:
        raise forbidden("admin role required")
    ns = write_namespace(p, body.namespace)
    name = check_name("name", body.name.strip())
    subject = subject_of(body.subject)
    trust = check_trust(body.consentedTrust, "consentedTrust")
    expires = parse_expiry(body.expiresAt) if body.expiresAt.strip() else ""
    server_name, server = await target_server(kube, p, ns, body.serverRef)
    subject["teamID"] = await default_team(request, p, ns, server, subject["teamID"])
    spec: dict[str, Any] = {
        "serverRef": {"name": server_name, "namespace": ns},
        "subject": compact(subject),
        "policyVersion": body.policyVersion.strip() or "v1",
    }
    if trust:
        spec["consentedTrust"] = trust
    if expires:
        spec["expiresAt"] = expires
    if body.revoked is not None:
        spec["revoked"] = body.revoked
    previous = await replaced_server(kube, p, kube.sessions, ns, name)
    obj = await upsert(kube.sessions, ns, name, spec, keep=("revoked", "upstreamTokenSecretRef"))
    policy = await sync_policy(request, kube, ns, server_name)
    if previous and previous != server_name:
        await sync_policy(request, kube, ns, previous)
    await notify_expiry(request, obj)
    await audit(request, p, "session_apply", f"session/{ns}/{name}", ns)
    return {"session": session_summary(obj), "policy": policy}


@router.get("/sessions/{namespace}/{name}")
async def get_session(namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """One session."""
    return {"session": session_summary(await load_owned(kube, p, kube.sessions, namespace, name))}


async def _set_revoked(
    request: Request, kube: SentinelKube, p: Principal, namespace: NamespacePath, name: NamePath, revoked: bool
) -> dict[str, Any]:
    obj = await load_owned(kube, p, kube.sessions, namespace, name)
    obj = await kcall(kube.sessions.patch, namespace, name, {"spec": {"revoked": revoked}})
    policy = await sync_policy(request, kube, namespace, server_of(obj))
    await notify_expiry(request, obj, "revoke" if revoked else "apply")
    await audit(request, p, "session_revoke" if revoked else "session_unrevoke", f"session/{namespace}/{name}",
                namespace)
    return {"success": True, "name": name, "namespace": namespace, "revoked": revoked, "policy": policy}


@router.patch("/sessions/{namespace}/{name}")
async def patch_session(
    request: Request, namespace: NamespacePath, name: NamePath, body: RevokedPatch, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """`{"revoked": bool}`: the kill switch (server administrators)."""
    return await _set_revoked(request, kube, p, namespace, name, body.revoked)


@router.post("/sessions/{namespace}/{name}/revoke")
async def revoke_session(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Legacy form of PATCH `{"revoked": true}`."""
    return await _set_revoked(request, kube, p, namespace, name, True)


@router.post("/sessions/{namespace}/{name}/unrevoke")
async def unrevoke_session(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Legacy form of PATCH `{"revoked": false}`."""
    return await _set_revoked(request, kube, p, namespace, name, False)


@router.delete("/sessions/{namespace}/{name}")
async def delete_session(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Delete a session; its server's policy drops it."""
    obj = await load_owned(kube, p, kube.sessions, namespace, name)
    try:
        await kcall(kube.sessions.delete, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise not_found(f"MCPAgentSession {namespace}/{name} not found") from None
        raise
    policy = await sync_policy(request, kube, namespace, server_of(obj))
    await notify_expiry(request, obj, "delete")
    await audit(request, p, "session_delete", f"session/{namespace}/{name}", namespace)
    return {"success": True, "name": name, "namespace": namespace, "policy": policy}
