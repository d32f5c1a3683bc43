"""Request authentication (§7.2): who the caller is (the dependencies routes declare are in `functions.api.deps`).

Order: `x-api-key` (configured service keys, then user keys), then `Authorization: Bearer`
(platform JWT; an OIDC ID token is refused: it is exchanged at `/api/auth/oidc`, never used as a
credential). Every user credential is resolved against the store on every
request, so a disabled or deleted user, or a revoked key, stops working immediately (§11.26).
Ingest keys are never accepted here.
"""

from __future__ import annotations

import hmac
import logging
import sys
import uuid

from fastapi import Request

from functions.api.context import ApiContext, ctx_of
from functions.api.errors import ApiError, forbidden, not_configured, unauthorized, unavailable
from functions.api.oidc import OidcError, OidcIdentity
from mcp_sentinel.client_address import client_address
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.identity.store import AuditEntry, Conflict, LinkRequired, NotFound, User
from mcp_sentinel.identity.tokens import TokenError

log = logging.getLogger(__name__)
SOURCES = frozenset({"ui", "cli", "api"})


def peer_address(request: Request) -> str:
    """The client address for lockout and audit: the transport peer, or behind a `TRUSTED_PROXIES`
    hop (the UI, an ingress) the right-most untrusted `X-Forwarded-For` entry. From any other peer
    the header is ignored: the client controls it."""
    peer = request.client.host if request.client else None
    proxies = ctx_of(request).settings.trusted_proxies
    if not proxies:
        return peer or "unknown"
    return client_address(peer, request.headers.get("x-forwarded-for"), proxies)


def _in(keys: frozenset[str], candidate: str) -> bool:
    # Compare against every key so timing does not reveal which (or how many) matched.
    found = False
    for k in keys:
        found |= hmac.compare_digest(k.encode(), candidate.encode())
    return found


async def _user_principal(ctx: ApiContext, user: User | None, auth_type: str, key_id: str | None = None) -> Principal:
    if user is None or user.disabled:
        raise unauthorized("account disabled or deleted" if user else "unknown user")
    assert ctx.store is not None
    return await ctx.store.load_principal(user, auth_type=auth_type, api_key_id=key_id)


def _db_errors() -> tuple[type[BaseException], ...]:
    # psycopg is imported by the identity store when it connects (mcp_sentinel.identity.store);
    # if it never was, no psycopg error can be in flight, and a 401 must not import it.
    psycopg = sys.modules.get("psycopg")
    return (psycopg.Error,) if psycopg is not None else ()


async def authenticate(request: Request) -> Principal | None:
    """The caller's principal, None when no credentials were sent; raises 401/500/503 on bad ones."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    ctx = ctx_of(request)
    try:
        principal = await _authenticate(ctx, request)
    except _db_errors():
        log.exception("credential lookup failed")
        raise ApiError(500, "auth_failed", "authentication failed") from None
    request.state.principal = principal
    return principal


async def _authenticate(ctx: ApiContext, request: Request) -> Principal | None:
    s = ctx.settings
    sent_key = request.headers.get("x-api-key")
    api_key = (sent_key or "").strip()
    bearer = ""
    authz = request.headers.get("authorization", "").strip()
    if authz[:7].lower() == "bearer ":
        bearer = authz[7:].strip()
    if sent_key is not None and not api_key:
        raise unauthorized("invalid API key")  # an empty key is a wrong key, not an absent one
    if api_key:
        # §11.30: a key listed only in ADMIN_API_KEYS is an admin key too.
        if _in(s.admin_api_keys, api_key):
            return Principal(role="admin", auth_type="service_api_key", is_service=True)
        if _in(s.api_keys, api_key):
            return Principal(role="user", auth_type="service_api_key", is_service=True)
        if not _in(s.ingest_api_keys, api_key) and ctx.store is not None:
            found = await ctx.store.resolve_key("api_keys", api_key)
            if found is not None:
                return await _user_principal(ctx, found[0], "user_api_key", found[1])
        # Fail closed: a wrong key is refused even beside a valid bearer token (it must not be
        # silently ignored, or a client never learns its key stopped working).
        raise unauthorized("invalid API key")
    if not bearer:
        return None
    if ctx.oidc is not None and ctx.oidc.is_id_token(bearer):
        # An ID token says who signed in at the provider, for the client that asked; it is not an
        # API credential (issue 14). The sign-in exchanges it, with its nonce, at /api/auth/oidc.
        raise unauthorized("ID tokens are not API credentials; exchange one at /api/auth/oidc")
    if ctx.tokens is None:
        raise unauthorized("bearer tokens are not accepted (no JWT keys configured)")
    try:
        claims = ctx.tokens.verify(bearer)
    except TokenError as exc:
        log.info("rejected bearer token: %s", exc)
        raise unauthorized("invalid or expired token") from None
    if ctx.store is None:
        raise unavailable("identity store not configured (set POSTGRES_DSN)")
    return await _user_principal(ctx, await ctx.store.get_user(claims.subject), "platform_jwt")


async def verified_id_token(ctx: ApiContext, id_token: str, nonce: str) -> OidcIdentity:
    """A verified ID token whose `nonce` claim equals the sign-in's nonce (401 otherwise).

    Without the nonce check any ID token issued for our client id (a token leaked from a log, or
    one minted for the same client id in another browser) could be exchanged here.
    """
    if ctx.oidc is None:
        raise not_configured("OIDC is not configured")
    try:
        ident = await ctx.oidc.verify(id_token)
    except OidcError as exc:
        log.info("rejected OIDC token: %s", exc)
        raise unauthorized("invalid ID token") from None
    if not nonce or ident.nonce is None or not hmac.compare_digest(ident.nonce.encode(), nonce.encode()):
        log.info("rejected OIDC token: nonce missing or different from the sign-in's")
        raise unauthorized("invalid ID token")
    return ident


def oidc_makes_admin(ctx: ApiContext, ident: OidcIdentity) -> bool:
    """ADMIN_USERS confers admin on an OIDC identity by subject, or by email only when verified."""
    admins = ctx.settings.admin_users
    # An unverified (or unstated) email proves nothing: anyone can claim any address at some IdPs.
    return ident.subject in admins or (ident.email_verified is True and ident.email in admins)


async def principal_from_oidc(ctx: ApiContext, ident: OidcIdentity) -> Principal:
    """Sign a verified OIDC identity in (401/403/409 when it may not), and return its principal."""
    if ctx.store is None:
        raise unavailable("identity store not configured (set POSTGRES_DSN)")
    make_admin = oidc_makes_admin(ctx, ident)
    try:
        user = await ctx.store.oidc_sign_in(
            ident.issuer,
            ident.subject,
            ident.email,
            email_verified=ident.email_verified is True,
            make_admin=make_admin,
            # New accounts come from self-service signup being on, or from ADMIN_USERS (bootstrap).
            may_create=ctx.settings.signup_enabled or make_admin,
        )
    except LinkRequired:
        raise ApiError(
            409,
            "link_required",
            "an account with this email already exists: sign in to it, then link this identity",
        ) from None
    except NotFound as exc:
        raise forbidden(f"{exc}; ask an administrator for an invitation") from None
    except Conflict:
        # A concurrent first sign-in won the race, or the email belongs to a deleted account.
        raise ApiError(409, "conflict", "an account with this email exists or was deleted; retry or ask an "
                       "administrator") from None
    return await _user_principal(ctx, user, "oidc_jwt")


def request_id(request: Request) -> str:
    """The caller's `x-request-id`, or a fresh one."""
    rid = request.headers.get("x-request-id", "").strip()[:128]
    return rid or uuid.uuid4().hex


def audit_entry(
    request: Request,
    principal: Principal | None,
    *,
    action: str,
    resource: str,
    status: str,
    message: str | None = None,
    user: User | None = None,
    email: str | None = None,
    **extra: str | None,
) -> AuditEntry:
    """An audit row carrying the request's actor, peer, request id and source."""
    src = request.headers.get("x-mcp-source", "").strip().lower()
    source = src if src in SOURCES else "api"
    if principal is not None:
        source = f"{source}:{principal.auth_type}"
    return AuditEntry(
        action=action,
        resource=resource,
        status=status,
        message=message,
        user_id=(user.id if user else principal.subject if principal else None),
        email=email or (user.email if user else principal.email if principal else None),
        actor_ip=peer_address(request),
        request_id=request_id(request),
        source=source,
        auth_identity=principal.auth_identity if principal else None,
        **extra,
    )
