"""`/api/auth/{signup,login,oidc,oidc/link,me}`: password and OIDC sign-in, identity linking, who-am-I."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from functions.api.auth import audit_entry, peer_address, principal_from_oidc, verified_id_token
from functions.api.context import ApiContext, ctx_of
from functions.api.deps import AnyPrincipal, MaybePrincipal, Store
from functions.api.errors import ApiError, bad_request, forbidden, not_configured, unauthorized, unavailable
from functions.api.models import Body
from functions.api.services.accounts import Credentials, SignupBody, create_password_user
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal
from mcp_sentinel.identity.store import Conflict, User

router = APIRouter(prefix="/api/auth", tags=["auth"])
class OidcBody(Body):
    """An OIDC ID token to exchange for a platform token, and the nonce its sign-in started with."""

    id_token: str = ""
    nonce: str = Field(default="", max_length=256)


SIGNUP_ACCEPTED = {
    "status": "accepted",
    "message": "if this email can be used, the account is ready: sign in with it",
}


def login_response(ctx: ApiContext, user: User, principal: Principal) -> dict[str, Any]:
    """The shared login/signup/oidc response shape."""
    if ctx.tokens is None:
        raise unavailable("token signing not configured (set JWT_SECRET or JWT_KEYS)")
    token = ctx.tokens.issue(subject=user.id, email=user.email, role=user.role)
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ctx.tokens.ttl_seconds,
        "user": {"id": user.id, "email": user.email, "role": user.role, "namespace": principal.namespace},
    }


@router.post("/signup", status_code=202, responses={403: {}})
async def signup(request: Request, body: SignupBody, store: Store, caller: MaybePrincipal) -> dict[str, Any]:
    """Self-service account (only with SIGNUP_ENABLED); the same answer whether or not the email is taken.

    The caller then signs in. Answering 409 for a taken email let anyone enumerate accounts, and
    signing the new account straight in made the answers differ too; both paths hash the password,
    so their timing matches as well.
    """
    ctx = ctx_of(request)
    if not ctx.settings.signup_enabled:
        raise forbidden("self-service signup is disabled; ask an administrator for an account")
    try:
        user = await create_password_user(request, store, body, caller)
    except Conflict:
        entry = audit_entry(
            request, caller, action="signup", resource="user", status="denied",
            message="email already registered", email=body.email.strip().lower(),
        )
    else:
        entry = audit_entry(request, caller, action="signup", resource="user", status="success", user=user)
    await store.audit(entry)
    return dict(SIGNUP_ACCEPTED)


@router.post("/login", responses={401: {}, 429: {}})
async def login(request: Request, body: Credentials, store: Store) -> Any:
    """Email/password sign-in with per-(account, peer) lockout."""
    ctx = ctx_of(request)
    if ctx.tokens is None:
        raise unavailable("token signing not configured (set JWT_SECRET or JWT_KEYS)")
    email = body.email.strip().lower()
    peer = peer_address(request)
    wait = ctx.lockout.retry_after(email, peer)
    if wait > 0:
        await store.audit(
            audit_entry(
                request, None, action="login", resource="session", status="denied", message="rate_limited", email=email
            )
        )
        retry = str(max(1, math.ceil(wait)))
        return JSONResponse(
            {"error": "too_many_requests", "message": f"too many failed logins; retry in {retry} s"},
            status_code=429,
            headers={"Retry-After": retry},
        )
    record = await store.password_login_record(email)
    user, stored = record if record else (None, None)
    ok = await ctx.hasher.verify(stored, body.password)
    if not ok or user is None or user.disabled:
        failures = ctx.lockout.failure(email, peer)
        entry = audit_entry(
            request,
            None,
            action="login",
            resource="session",
            status="denied",
            message=f"invalid credentials (failures={failures})",
            user=user,
            email=email,
        )
        await store.audit(entry)
        raise unauthorized("invalid credentials")
    ctx.lockout.success(email, peer)
    await store.audit(audit_entry(request, None, action="login", resource="session", status="success", user=user))
    principal = await store.load_principal(user, auth_type="password")
    return login_response(ctx, user, principal)


@router.post("/oidc", responses={401: {}, 403: {}, 409: {}})
async def oidc_login(request: Request, body: OidcBody, store: Store) -> dict[str, Any]:
    """Exchange a verified OIDC ID token (with its sign-in's nonce) for a platform access token."""
    ctx = ctx_of(request)
    if ctx.oidc is None:
        raise not_configured("OIDC is not configured")
    if not body.id_token.strip():
        raise bad_request("id_token is required")
    ident = await verified_id_token(ctx, body.id_token.strip(), body.nonce)
    try:
        principal = await principal_from_oidc(ctx, ident)
    except ApiError as exc:
        await store.audit(
            audit_entry(request, None, action="oidc_login", resource="session", status="denied",
                        message=exc.code, email=ident.email or None)
        )
        raise
    if not ctx.oidc_nonces.spend(body.nonce, ident.expires_at):
        raise unauthorized("invalid ID token")  # this token and nonce were exchanged before: a replay
    assert principal.subject is not None
    user = await store.get_user(principal.subject)
    assert user is not None
    await store.audit(audit_entry(request, principal, action="oidc_login", resource="session", status="success"))
    return login_response(ctx, user, principal)


@router.post("/oidc/link", responses={401: {}, 403: {}, 409: {}})
async def oidc_link(request: Request, body: OidcBody, store: Store, caller: AnyPrincipal) -> dict[str, Any]:
    """Link an OIDC identity to the signed-in account (the owner proves both sides).

    The caller signs in to the account (a platform token from password or OIDC sign-in) and
    presents an ID token for the same email that the provider marks verified. After this the
    identity signs in to this account directly.
    """
    ctx = ctx_of(request)
    if ctx.oidc is None:
        raise not_configured("OIDC is not configured")
    if caller.auth_type not in ("platform_jwt", "oidc_jwt") or not caller.subject:
        raise forbidden("sign in to the account (not with an API key) to link an identity")
    if not body.id_token.strip():
        raise bad_request("id_token is required")
    ident = await verified_id_token(ctx, body.id_token.strip(), body.nonce)
    if ident.email_verified is not True or ident.email != (caller.email or "").lower():
        raise forbidden("the identity provider must vouch for this account's email (email_verified)")
    try:
        await store.link_oidc_identity(caller.subject, ident.issuer, ident.subject)
    except Conflict:
        raise ApiError(409, "conflict", "this identity is linked to another account") from None
    if not ctx.oidc_nonces.spend(body.nonce, ident.expires_at):
        raise unauthorized("invalid ID token")
    await store.audit(
        audit_entry(request, caller, action="oidc_link", resource=f"user/{caller.subject}", status="success",
                    message=f"oidc:{ident.issuer}")
    )
    return {"linked": True, "provider": f"oidc:{ident.issuer}"}


@router.get("/me")
async def me(principal: AnyPrincipal) -> dict[str, Any]:
    """The caller's principal (camelCase keys, as the UI expects)."""
    p: dict[str, Any] = {"role": principal.role}
    if principal.subject:
        p["subject"] = principal.subject
    if principal.email:
        p["email"] = principal.email
    if principal.namespace:
        p["namespace"] = principal.namespace
    if principal.allowed_namespaces:
        p["allowedNamespaces"] = list(principal.allowed_namespaces)
    if principal.teams:
        p["teams"] = [t.to_json() for t in principal.teams]
    p["authType"] = principal.auth_type
    return {"authenticated": True, "sharedCatalogNamespace": SHARED_NAMESPACE, "principal": p}
