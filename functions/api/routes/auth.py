"""`/api/auth/{signup,login,oidc,me}`: password and OIDC sign-in, and who-am-I."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from functions.api.auth import (
    AnyPrincipal,
    MaybePrincipal,
    Store,
    audit_entry,
    ctx_of,
    peer_address,
    principal_from_oidc,
)
from functions.api.context import ApiContext
from functions.api.errors import ApiError, bad_request, forbidden, unauthorized, unavailable
from mcp_sentinel.identity.passwords import validate_password
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal
from mcp_sentinel.identity.store import Conflict, User

router = APIRouter(prefix="/api/auth", tags=["auth"])
MAX_EMAIL_LENGTH = 254


class Credentials(BaseModel):
    """Email and password."""

    email: str = Field(max_length=MAX_EMAIL_LENGTH)
    password: str = Field(max_length=1024)


class SignupBody(Credentials):
    """Signup/user-creation body; `role` admin needs an admin caller."""

    role: str = "user"


class OidcBody(BaseModel):
    """An OIDC ID token to exchange for a platform token."""

    id_token: str = ""


def validate_email(raw: str) -> str:
    """The normalised email, or 400 with the reason."""
    email = raw.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or len(email) > MAX_EMAIL_LENGTH or any(c.isspace() for c in email):
        raise bad_request("email must look like name@domain")
    host = domain.strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return email
    raise bad_request("email domain must not be an IP address")


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


async def create_password_user(request: Request, store: Store, body: SignupBody, caller: Principal | None) -> User:
    """Shared by signup and POST /api/users: validate, hash, insert, audit."""
    ctx = ctx_of(request)
    email = validate_email(body.email)
    if body.role not in ("user", "admin"):
        raise bad_request("role must be user or admin")
    if body.role == "admin" and not (caller and caller.is_admin):
        raise forbidden("creating an admin requires an admin caller")
    problem = validate_password(body.password)
    if problem:
        raise bad_request(problem)
    try:
        user = await store.create_user(email, body.role, await ctx.hasher.hash(body.password))
    except Conflict:
        raise ApiError(409, "conflict", "a user with this email already exists") from None
    return user


@router.post("/signup", status_code=201)
async def signup(request: Request, body: SignupBody, store: Store, caller: MaybePrincipal) -> dict[str, Any]:
    """Create an account (role user unless an admin asks for admin) and sign it in."""
    ctx = ctx_of(request)
    if ctx.tokens is None:
        raise unavailable("token signing not configured (set JWT_SECRET or JWT_KEYS)")
    user = await create_password_user(request, store, body, caller)
    await store.audit(audit_entry(request, caller, action="signup", resource="user", status="success", user=user))
    principal = await store.load_principal(user, auth_type="password")
    return login_response(ctx, user, principal)


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


@router.post("/oidc")
async def oidc_login(request: Request, body: OidcBody, store: Store) -> dict[str, Any]:
    """Exchange a verified OIDC ID token for a platform access token."""
    ctx = ctx_of(request)
    if ctx.oidc is None:
        raise unavailable("OIDC is not configured")
    if not body.id_token.strip():
        raise bad_request("id_token is required")
    principal = await principal_from_oidc(ctx, body.id_token.strip())
    assert principal.subject is not None
    user = await store.get_user(principal.subject)
    assert user is not None
    await store.audit(audit_entry(request, principal, action="oidc_login", resource="session", status="success"))
    return login_response(ctx, user, principal)


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
