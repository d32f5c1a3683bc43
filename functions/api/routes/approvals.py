"""Approvals (issue 18 item 3): the gateway asks, the server's owners decide.

* `POST /api/gateway/approvals`: a gateway, authenticated by its per-gateway credential
  (`X-Gateway-Credential: sgw1.…`, the key it writes audit events with; HMAC-verified with the
  platform's gateway secret), asks to spend an approval for one call or to request one. The
  server and namespace come from the credential, never from the body: a gateway can only ask
  about its own server.
* `GET /api/approvals`, `GET /api/approvals/{id}`, `POST /api/approvals/{id}/approve|reject`: the
  approvers, i.e. owners of the team that owns the server's namespace, and admins. Other callers
  see an empty list and get 403 for one approval (the same answer as for an unknown id, so they
  learn nothing about other teams' calls). Decisions need a user (the approver is recorded).

Each approval is one ApprovalWorkflow (workflows/approvals); these routes hold no state.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from pydantic import BeforeValidator, Field

from functions.api.context import ctx_of
from functions.api.deps import AnyPrincipal, UserPrincipal, temporal_client
from functions.api.errors import ApiError, bad_request, forbidden, not_configured, unavailable
from functions.api.models import Loose, NamespaceFilter, integral
from functions.api.services.scope import audit, team_for
from mcp_sentinel.gateway_credentials import GatewayBinding, verify
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.policy.approvals import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    approval_digest,
    canonical_json,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["approvals"])
MAX_ARGUMENTS_BYTES = 32 * 1024
# Running requests one caller (human + agent) may have on one server before new ones are refused.
MAX_PENDING_PER_CALLER = 20
# The whole ask (several Temporal calls) is bounded below the gateway's own 10 s timeout
# (sidecar/approval.py), so a stuck or frozen Temporal reaches the gateway as a readable 503.
ASK_TIMEOUT_SECONDS = 8.0
APPROVAL_ID = r"^[0-9a-f]{32}\.[0-9a-f-]{36}$"


# `<digest, 32 hex>.<run id>`: the run makes an old link unable to decide a later request for the same call.
ApprovalId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}\.[0-9a-f-]{36}$", description="Approval id")]


class GatewayAsk(Loose):
    """One call that needs an approval, as the gateway saw it after an allowed decision."""

    tool: str = Field(min_length=1, max_length=256)
    arguments: dict[str, Any] = Field(default_factory=dict)
    humanID: str = Field(default="", max_length=256)
    agentID: str = Field(default="", max_length=256)
    teamID: str = Field(default="", max_length=256)
    sessionID: str = Field(default="", max_length=256)
    sideEffect: str = Field(default="", max_length=16)
    grant: str = Field(default="", max_length=253)
    grantNamespace: str = Field(default="", max_length=63)
    ttlSeconds: Annotated[int, Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS), BeforeValidator(integral)] = (
        DEFAULT_TTL_SECONDS)


class RejectIn(Loose):
    """Why the request was rejected (shown to other approvers and in the audit log)."""

    note: str = Field(default="", max_length=500)


def _gateway(request: Request, credential: str) -> GatewayBinding:
    if not credential.strip():
        raise ApiError(401, "unauthorized", "a gateway credential is required (X-Gateway-Credential)")
    secrets = ctx_of(request).settings.gateway_secrets
    if not secrets:
        raise not_configured("gateway credentials are not configured (set INGEST_GATEWAY_SECRET)")
    binding = verify(secrets, credential.strip())
    if binding is None:
        raise ApiError(401, "unauthorized", "a valid gateway credential is required")
    return binding


async def _temporal(request: Request) -> Any:
    ctx = ctx_of(request)
    client = await temporal_client(ctx)
    if client is None and not ctx.settings.temporal_address:  # no Temporal here: no approvals (as restarts)
        raise not_configured("approvals need Temporal, which is not configured (set TEMPORAL_ADDRESS)")
    if client is None:
        raise unavailable("Temporal not available (set TEMPORAL_ADDRESS)")
    return client


def approves(p: Principal, namespace: str) -> bool:
    """May `p` decide approvals for servers in `namespace`? Admins, and owners of the namespace's team."""
    if p.is_admin:
        return True
    team = team_for(p, namespace)
    return team is not None and team.role == "owner"


def _link(request: Request) -> str:
    settings = ctx_of(request).settings
    base = settings.approvals_ui_url or settings.public_base_url
    return f"{base}/#/approvals"


@router.post("/api/gateway/approvals")
async def gateway_ask(
    request: Request, body: GatewayAsk, x_gateway_credential: str = Header(default="")
) -> dict[str, Any]:
    """Spend the approval of this exact call (`used`: forward it once) or join/start its request."""
    from workflows.approvals.client import request_or_consume
    from workflows.approvals.workflows import ApprovalRequest

    gw = _gateway(request, x_gateway_credential)
    if not (body.humanID or body.agentID or body.teamID):
        raise bad_request("an approval needs a caller (humanID, agentID or teamID)")
    try:
        args_text = canonical_json(body.arguments).decode()
    except ValueError:
        raise bad_request("arguments must be plain JSON") from None
    if len(args_text) > MAX_ARGUMENTS_BYTES:
        raise bad_request(f"arguments exceed {MAX_ARGUMENTS_BYTES} bytes")
    digest = approval_digest(namespace=gw.namespace, server=gw.server, human_id=body.humanID, agent_id=body.agentID,
                             team_id=body.teamID, tool=body.tool, arguments=body.arguments)  # fmt: skip
    req = ApprovalRequest(digest, gw.namespace, gw.server, body.tool, body.humanID, body.agentID, body.teamID,
                          args_text, body.ttlSeconds, body.grant, body.grantNamespace or gw.namespace,
                          body.sideEffect, body.sessionID)  # fmt: skip
    client = await _temporal(request)
    try:
        answer = await asyncio.wait_for(request_or_consume(client, req, max_pending=MAX_PENDING_PER_CALLER),
                                        ASK_TIMEOUT_SECONDS)  # fmt: skip
    except Exception:
        log.warning("approval request for %s/%s failed", gw.namespace, gw.server, exc_info=True)
        raise unavailable("approvals are not available right now") from None
    return {"status": answer.status, "approvalId": answer.approval_id, "url": _link(request),
            "expiresAt": answer.expires_at, "previous": answer.previous}  # fmt: skip


@router.get("/api/approvals")
async def list_approvals(request: Request, p: AnyPrincipal, namespace: NamespaceFilter = None) -> dict[str, Any]:
    """Running approvals (pending, or approved and not used yet) the caller may decide."""
    from workflows.approvals.client import list_approvals as running

    if not p.is_admin and not any(t.role == "owner" for t in p.teams):
        return {"approvals": []}  # nothing to decide: no need to ask Temporal
    client = await _temporal(request)
    items = [a for a in await running(client) if approves(p, str(a.get("namespace", "")))]
    if namespace:
        items = [a for a in items if a.get("namespace") == namespace]
    return {"approvals": [_shown(a) for a in items]}


def _shown(a: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    try:
        out["arguments"] = json.loads(str(a.get("arguments", "")))
    except ValueError:
        pass  # truncated preview: shown as text
    return out


async def _one(request: Request, p: Principal, approval: str) -> tuple[Any, dict[str, Any]]:
    from workflows.approvals.client import ApprovalNotFound, get_approval

    client = await _temporal(request)
    try:
        found = await get_approval(client, approval)
    except ApprovalNotFound:
        found = None
    # Unknown and not-yours answer alike.
    if found is None or not approves(p, str(found.get("namespace", ""))):
        raise forbidden("not an approval you can decide")
    return client, found


@router.get("/api/approvals/{approval_id}")
async def get_approval(request: Request, approval_id: ApprovalId, p: AnyPrincipal) -> dict[str, Any]:
    """One approval with its live status."""
    _client, found = await _one(request, p, approval_id)
    return {"approval": _shown(found)}


async def _decide(request: Request, approval_id: str, p: Principal, *, approve: bool, note: str = "") -> dict[str, Any]:
    from workflows.approvals.client import ApprovalNotFound, decide

    client, found = await _one(request, p, approval_id)
    by = p.email or p.subject or ""
    status = found.get("status", "")
    if status == "pending":
        try:
            status = await decide(client, approval_id, approve=approve, by=by, note=note)
        except ApprovalNotFound:
            status = ""
        if status == ("approved" if approve else "rejected"):
            status = ""  # this decision took effect
        else:
            status = status or "closed"
    if status:
        raise ApiError(409, "conflict", f"the approval is {status}, not pending")
    ns = str(found.get("namespace", ""))
    await audit(request, p, f"approval_{'approve' if approve else 'reject'}",
                f"approval/{ns}/{found.get('server', '')}/{approval_id}", ns, note)  # fmt: skip
    return {"approval": {**_shown(found), "status": "approved" if approve else "rejected", "decidedBy": by}}


@router.post("/api/approvals/{approval_id}/approve")
async def approve(request: Request, approval_id: ApprovalId, p: UserPrincipal) -> dict[str, Any]:
    """Approve a pending request: the caller's next identical call goes through, once."""
    return await _decide(request, approval_id, p, approve=True)


@router.post("/api/approvals/{approval_id}/reject")
async def reject(
    request: Request, approval_id: ApprovalId, p: UserPrincipal, body: RejectIn | None = None
) -> dict[str, Any]:
    """Reject a pending request: the caller's retries are denied `approval_rejected` for its ttl."""
    return await _decide(request, approval_id, p, approve=False, note=(body.note if body else "").strip())
