"""`/auth/login`, `/auth/logout`, `/auth/oidc/start`, `/auth/status`, `/auth/admin-check`."""

from __future__ import annotations

import hmac
import json
import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from functions.ui.context import COOKIE, UiContext, ctx_of, error
from functions.ui.login import Credential, LoginFailed
from functions.ui.oidc_flow import COOKIE as OIDC_COOKIE
from functions.ui.oidc_flow import COOKIE_PATH as OIDC_COOKIE_PATH
from functions.ui.oidc_flow import MAX_AGE_SECONDS as OIDC_MAX_AGE
from functions.ui.security import csrf_ok, is_https, same_origin
from functions.ui.service_keys import SERVICE_KEY_REFUSED, is_service_admin_key

MAX_LOGIN_BODY = 8 * 1024
_ALL = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _secure(ctx: UiContext, request: Request) -> bool:
    return ctx.settings.secure_cookies or is_https(request)


def _public_principal(p: dict[str, Any]) -> dict[str, Any]:
    keys = ("role", "subject", "email", "namespace", "allowed_namespaces", "teams", "auth_type")
    return {k: p[k] for k in keys if k in p}


def _status_body(principal: dict[str, Any], csrf: str, expires_at: float) -> dict[str, Any]:
    return {
        "authenticated": True,
        "principal": _public_principal(principal),
        "csrf_token": csrf,
        "expires_at": int(expires_at),
    }


async def _read_json(request: Request) -> dict[str, Any] | JSONResponse:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_LOGIN_BODY:
        return error(413, "request_too_large", f"request body exceeds {MAX_LOGIN_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            return error(413, "request_too_large", f"request body exceeds {MAX_LOGIN_BODY} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        return error(400, "invalid_request", "body must be a JSON object")
    if not isinstance(data, dict):
        return error(400, "invalid_request", "body must be a JSON object")
    return data


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


async def login(request: Request) -> Response:
    """Sign in with `{email,password}`, `{id_token}` or `{api_key}`; sets the session cookie."""
    ctx = ctx_of(request)
    if not same_origin(request):
        return error(403, "csrf_rejected", "cross-site sign-in refused")
    client = ctx.client_ip(request)
    wait = ctx.limiter.attempt(client)
    if wait > 0:
        retry = str(max(1, math.ceil(wait)))
        return error(429, "too_many_requests", f"too many sign-in attempts; retry in {retry} s", {"Retry-After": retry})
    data = await _read_json(request)
    if isinstance(data, JSONResponse):
        return data
    email, password = _text(data, "email"), data.get("password")
    id_token, api_key = _text(data, "id_token"), _text(data, "api_key")
    try:
        if email and isinstance(password, str) and password:
            cred = await ctx.login.password(email, password, client)
        elif id_token:
            assert ctx.oidc_flow is not None
            nonce = ctx.oidc_flow.nonce_for(request.cookies.get(OIDC_COOKIE), _text(data, "state"))
            if nonce is None:
                return error(400, "invalid_state", "this sign-in was not started here or has expired; try again")
            cred = await ctx.login.id_token(id_token, nonce, client)
        elif api_key:
            if is_service_admin_key(ctx, api_key):
                ctx.limiter.failure(client)  # counted: the answer tells a valid admin key from a wrong one
                return error(403, "service_key_refused", SERVICE_KEY_REFUSED)
            cred = Credential("api_key", api_key, None)
        else:
            return error(400, "missing_credentials", "send email and password, an id_token, or an api_key")
        principal = await ctx.login.principal(cred, client)
    except LoginFailed as exc:
        if exc.bad_credentials:
            ctx.limiter.failure(client)
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
        return error(exc.status, exc.code, exc.message, headers)
    ctx.limiter.success(client)
    principal.setdefault("auth_type", "user_api_key" if cred.kind == "api_key" else "platform_jwt")
    ttl = ctx.settings.session_ttl
    if cred.expires_at is not None:
        ttl = min(ttl, cred.expires_at - time.time())
    if ttl <= 1:
        return error(401, "unauthorized", "the credential is already expired")
    try:
        cookie, session = await ctx.store.create(principal, cred.kind, cred.value, ttl)
    except Exception:  # the store is a local file: disk full, permissions
        return error(500, "session_create_failed", "could not create the session")
    resp = JSONResponse(_status_body(principal, session.csrf, session.expires_at))
    resp.set_cookie(
        COOKIE, cookie, max_age=int(ttl), path="/", httponly=True, secure=_secure(ctx, request), samesite="strict"
    )
    if id_token:  # the sign-in's state and nonce are spent
        resp.delete_cookie(OIDC_COOKIE, path=OIDC_COOKIE_PATH, httponly=True, secure=_secure(ctx, request),
                           samesite="strict")
    return resp


async def oidc_start(request: Request) -> Response:
    """A fresh `state` and `nonce` for an OIDC sign-in, remembered in a short-lived signed cookie."""
    ctx = ctx_of(request)
    if not same_origin(request):
        return error(403, "csrf_rejected", "cross-site sign-in refused")
    assert ctx.oidc_flow is not None
    started = ctx.oidc_flow.start()
    resp = JSONResponse({"state": started.state, "nonce": started.nonce})
    resp.set_cookie(OIDC_COOKIE, started.cookie, max_age=OIDC_MAX_AGE, path=OIDC_COOKIE_PATH, httponly=True,
                    secure=_secure(ctx, request), samesite="strict")
    return resp


async def logout(request: Request) -> Response:
    """Delete the server-side session and expire the cookie (CSRF-checked when a session exists)."""
    ctx = ctx_of(request)
    session = await ctx.session(request)
    if session is not None and not csrf_ok(request, session.csrf):
        return error(403, "csrf_rejected", "missing or wrong X-CSRF-Token")
    await ctx.store.delete(request.cookies.get(COOKIE))
    resp = JSONResponse({"authenticated": False})
    resp.delete_cookie(COOKIE, path="/", httponly=True, secure=_secure(ctx, request), samesite="strict")
    return resp


async def wrong_method(_request: Request) -> Response:
    """Only POST signs in or out."""
    return error(405, "method_not_allowed", "use POST", {"Allow": "POST"})


async def status(request: Request) -> Response:
    """Whether this browser is signed in, as whom, and its CSRF token."""
    session = await ctx_of(request).session(request)
    if session is None:
        return JSONResponse({"authenticated": False})
    return JSONResponse(_status_body(session.principal, session.csrf, session.expires_at))


async def admin_check(request: Request) -> Response:
    """Forward-auth for admin-only tools (e.g. Grafana): 204 for admin sessions or admin API keys."""
    ctx = ctx_of(request)
    key = request.headers.get("x-api-key", "").strip()
    if key:
        found = False
        for candidate in ctx.settings.admin_api_keys:
            found |= hmac.compare_digest(candidate.encode(), key.encode())
        if found:
            return Response(status_code=204)
    session = await ctx.session(request)
    if session is None or not session.is_admin:
        return error(401, "unauthorized", "admin session or admin API key required")
    # The role cached in the session may be hours old: ask the API who the session's credential is
    # now, so a demoted, disabled or deleted admin loses admin tools at once. No answer, no access.
    try:
        current = await ctx.login.principal(Credential(session.cred_kind, session.credential, None),
                                             ctx.client_ip(request))
    except LoginFailed as exc:
        if exc.status == 401:
            return error(401, "unauthorized", "the session's credential is no longer valid")
        return error(503, "admin_check_unavailable", "could not confirm the admin role with the API")
    if current.get("role") != "admin":
        return error(403, "forbidden", "the session's user is no longer an admin")
    return Response(status_code=204)


# Order matters: a POST-only route only partially matches a GET, so the catch-all after it answers.
ROUTES = [
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/oidc/start", oidc_start, methods=["POST"]),
    Route("/auth/login", wrong_method, methods=_ALL),
    Route("/auth/logout", wrong_method, methods=_ALL),
    Route("/auth/oidc/start", wrong_method, methods=_ALL),
    Route("/auth/status", status, methods=["GET"]),
    Route("/auth/admin-check", admin_check, methods=["GET"]),
]
