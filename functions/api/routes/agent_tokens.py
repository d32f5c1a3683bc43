"""Platform agent tokens: `POST /api/agent-tokens` and the issuer's public keys.

* `GET /api/.well-known/jwks.json`: every signing key's public half (no authentication: gateways
  and anyone verifying a token fetch it).
* `GET /api/.well-known/agent-token-issuer`: the issuer metadata (issuer, jwks_uri, algorithms).
* `POST /api/agent-tokens` `{"namespace", "session"}`: a short-lived token for one of the
  caller's own agent sessions (obtained from `POST /api/runtime/adapter/sessions`, which checks
  the grants). Rules: a *user* credential (service keys have no human to bind); the session's
  human must be the caller, whoever the caller is (admins included: nobody mints for somebody
  else); the session is neither revoked nor expired; its server has an enabled gateway in
  `platform` mode and a canonical URL. Any session the caller may not use answers 404, so the
  route does not reveal which sessions exist. The token expires at the earlier of the token
  lifetime and the session's `expiresAt`; revoking the session (or disabling the user, which
  revokes their sessions) denies it at the gateways with the next policy reload.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from functions.api.agent_tokens import AgentTokenIssuer, canonical_resource
from functions.api.context import ctx_of
from functions.api.deps import Kube, UserPrincipal, kcall
from functions.api.errors import ApiError, not_found, unavailable
from functions.api.models import DNS_LABEL, Loose, Name
from functions.api.services.scope import audit, check_name

router = APIRouter(tags=["agent-tokens"])


class AgentTokenIn(Loose):
    """Which of the caller's agent sessions the token is for."""

    namespace: str = Field(max_length=63, pattern=DNS_LABEL)
    session: Name


def _issuer(request: Request) -> AgentTokenIssuer:
    ctx = ctx_of(request)
    found = ctx.extras.get("agent_tokens")
    if isinstance(found, AgentTokenIssuer):
        return found
    built = ctx.settings.agent_tokens()
    if built is None:
        raise unavailable("platform agent tokens are not configured (AGENT_TOKEN_KEYS, AGENT_TOKEN_ISSUER)")
    ctx.extras["agent_tokens"] = built
    return built


@router.get("/api/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    """The agent-token signing keys (public halves)."""
    return JSONResponse(_issuer(request).jwks(), headers={"Cache-Control": "public, max-age=300"})


@router.get("/api/.well-known/agent-token-issuer")
async def issuer_metadata(request: Request) -> dict[str, Any]:
    """Where the keys are and how tokens are signed."""
    return _issuer(request).metadata()


def _epoch(raw: Any) -> float | None:
    try:
        ts = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts.timestamp() if ts.tzinfo else None


@router.post("/api/agent-tokens")
async def issue(request: Request, body: AgentTokenIn, kube: Kube, p: UserPrincipal) -> dict[str, Any]:
    """A platform token for one of the caller's own live agent sessions (see the module docstring)."""
    issuer = _issuer(request)
    ns = check_name("namespace", body.namespace.strip(), label=True)
    name = check_name("session", body.session.strip())
    missing = not_found(f"agent session {ns}/{name} not found")
    try:
        obj: dict[str, Any] = await kcall(kube.sessions.get, ns, name)
    except ApiError as exc:
        if exc.status == 404:
            raise missing from None
        raise
    spec = obj.get("spec") or {}
    subject = spec.get("subject") or {}
    human = p.subject or ""
    if not human or str(subject.get("humanID") or "").strip() != human:
        raise missing  # somebody else's session: indistinguishable from none
    if spec.get("revoked") is True:
        raise ApiError(403, "session_revoked", f"agent session {ns}/{name} was revoked")
    now = time.time()
    expires = _epoch(spec["expiresAt"]) if spec.get("expiresAt") else None
    if spec.get("expiresAt") and (expires is None or expires <= now):
        raise ApiError(403, "session_expired", f"agent session {ns}/{name} has expired")
    agent = str(subject.get("agentID") or "").strip()
    if not agent:
        raise ApiError(409, "conflict", "the session names no agent; platform tokens bind one")
    ref = spec.get("serverRef") or {}
    server_name, server_ns = str(ref.get("name") or ""), str(ref.get("namespace") or ns)
    try:
        server: dict[str, Any] = await kcall(kube.servers.get, server_ns, server_name)
    except ApiError as exc:
        if exc.status == 404:
            gone = f"the session's server {server_ns}/{server_name} no longer exists"
            raise ApiError(409, "conflict", gone) from None
        raise
    sspec = server.get("spec") or {}
    raw_auth = sspec.get("auth")
    auth: dict[str, Any] = raw_auth if isinstance(raw_auth, dict) else {}
    mode = str(auth.get("mode") or "platform").strip().lower()
    if (sspec.get("gateway") or {}).get("enabled") is not True or mode != "platform":
        raise ApiError(409, "conflict", f"server {server_ns}/{server_name} does not accept platform tokens")
    resource = str(auth.get("resource") or "") or canonical_resource(
        ctx_of(request).settings.public_base_url, server_name, sspec
    )
    if not resource:
        raise ApiError(409, "conflict", f"server {server_ns}/{server_name} has no canonical URL (MCP_PUBLIC_BASE_URL)")
    # The rendered policy fills an empty session team with the server's team (§11 #2): so does the token.
    team = str(subject.get("teamID") or "").strip() or str(sspec.get("teamID") or "").strip()
    token, exp = issuer.mint(
        human=human, agent=agent, team=team, session=name, session_namespace=ns,
        server=f"{server_ns}/{server_name}", audience=resource, not_after=expires,
    )  # fmt: skip
    await audit(request, p, "agent_token_issue", f"session/{ns}/{name}", ns, f"server={server_ns}/{server_name}")
    return {
        "access_token": token,
        "token_type": "Bearer",
        # Counted from after minting: `now` (before it) can be a second older than the token's iat.
        "expires_in": max(0, exp - int(time.time())),
        "expires_at": datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resource": resource,
        "server": {"namespace": server_ns, "name": server_name},
        "session": {"namespace": ns, "name": name},
    }
