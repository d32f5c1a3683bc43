"""Agent sessions beyond their Kubernetes object: the SessionExpiry workflow that ends them on time,
and revoking a user's sessions when the user is disabled or deleted.

Disabling or deleting a user revokes their agent sessions, so their platform tokens stop at once.

A platform token stays cryptographically valid until it expires; what the gateway checks on every
call is that the token's session is live in the policy it has loaded. Revoking the user's
sessions (and re-rendering the policies of their servers) therefore denies the user's agents with
the next policy reload, well before the tokens expire. Re-enabling the user does not unrevoke
them: an administrator does that explicitly (PATCH /api/runtime/sessions/...).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request

from functions.api.context import ctx_of
from functions.api.deps import kcall, require_kube, temporal_client
from functions.api.errors import ApiError
from functions.api.services.scope import meta, sync_policy

log = logging.getLogger(__name__)


async def notify_expiry(request: Request, obj: dict[str, Any], event: str = "apply") -> None:
    """Tell the session's SessionExpiry workflow about the change (best effort, never fails the request)."""
    client = await temporal_client(ctx_of(request))
    if client is None:
        return
    name, ns = meta(obj)
    spec = obj.get("spec") or {}
    try:
        from workflows import client as wf

        if event == "revoke":
            await wf.revoke_session(client, ns, name)
        elif event == "delete":
            await wf.delete_session(client, ns, name)
        elif spec.get("expiresAt") and spec.get("revoked") is not True:
            ref = spec.get("serverRef") or {}
            await wf.schedule_session_expiry(
                client, ns, name, str(spec["expiresAt"]), server=str(ref.get("name", "")),
                server_namespace=str(ref.get("namespace") or ns),
            )
    except Exception:
        log.warning("SessionExpiry %s for %s/%s failed; the reconcile schedule will catch up", event, ns, name,
                    exc_info=True)


async def revoke_user_sessions(request: Request, human_id: str) -> dict[str, Any]:
    """Revoke every live session whose subject is `human_id`; the outcome goes into the response."""
    try:
        kube = require_kube(request)
    except ApiError as exc:
        log.warning("sessions of %s not revoked: %s", human_id, exc.message)
        return {"sessions_error": f"agent sessions not revoked: {exc.message}"}
    revoked: list[str] = []
    try:
        sessions = await kcall(kube.sessions.list, None)
    except ApiError as exc:
        log.warning("sessions of %s not revoked: %s", human_id, exc.message)
        return {"sessions_error": f"agent sessions not revoked: {exc.message}"}
    servers: set[tuple[str, str]] = set()
    for obj in sessions:
        spec = obj.get("spec") or {}
        if str((spec.get("subject") or {}).get("humanID") or "").strip() != human_id or spec.get("revoked") is True:
            continue
        name, ns = meta(obj)
        await kcall(kube.sessions.patch, ns, name, {"spec": {"revoked": True}})
        ref = spec.get("serverRef") or {}
        servers.add((str(ref.get("namespace") or ns), str(ref.get("name") or "")))
        revoked.append(f"{ns}/{name}")
        await notify_expiry(request, obj, "revoke")
    for ns, server in sorted(servers):
        await sync_policy(request, kube, ns, server)
    return {"revoked_sessions": revoked}
