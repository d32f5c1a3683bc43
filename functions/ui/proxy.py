"""`/api/*` reverse proxy to the API, injecting the session's credential.

Bodies stream both ways (server-sent events and large downloads pass through unbuffered).
The browser's cookies never reach the API; a request that brings its own `Authorization` or
`x-api-key` (CLI, scripts through the front door) is forwarded as-is, except a service admin key
(functions/ui/service_keys.py); a request that relies on
the session must carry the session's CSRF token when it changes state.
"""

from __future__ import annotations

import logging

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from functions.ui.context import ctx_of, error
from functions.ui.security import UNSAFE_METHODS, csrf_ok, is_https, public_host
from functions.ui.service_keys import SERVICE_KEY_REFUSED, is_service_admin_key

log = logging.getLogger(__name__)

_HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "cookie", "x-csrf-token",
    }
)
_DROP_FROM_UPSTREAM = frozenset({"connection", "keep-alive", "transfer-encoding", "set-cookie", "content-length"})


async def proxy(request: Request) -> Response:
    """Forward to `API_UPSTREAM/api/<path>`; 502 `api_unavailable` when the API cannot be reached."""
    path = request.path_params["path"]
    ctx = ctx_of(request)
    assert ctx.client is not None
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    # Repeated credential headers: which one would the API read? (The dict above keeps the last.)
    if any(len(request.headers.getlist(name)) > 1 for name in ("x-api-key", "authorization")):
        return error(400, "ambiguous_credentials", "send one x-api-key or Authorization header")
    if is_service_admin_key(ctx, request.headers.get("x-api-key", "").strip()):
        return error(403, "service_key_refused", SERVICE_KEY_REFUSED)
    own_credentials = "authorization" in headers or "x-api-key" in headers
    if not own_credentials:
        session = await ctx.session(request)
        if session is not None:
            if request.method in UNSAFE_METHODS and not csrf_ok(request, session.csrf):
                return error(403, "csrf_rejected", "missing or wrong X-CSRF-Token")
            headers.update(session.upstream_headers())
    peer = request.client.host if request.client else ""
    prior = request.headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{prior}, {peer}" if prior else peer
    headers["x-forwarded-host"] = public_host(request)
    headers["x-forwarded-proto"] = "https" if is_https(request) else request.url.scheme
    headers["x-mcp-source"] = "ui"
    url = f"{ctx.settings.api_upstream}/api/{path}" + (f"?{request.url.query}" if request.url.query else "")
    body = request.stream() if request.method not in ("GET", "HEAD", "OPTIONS") else None
    upstream_req = ctx.client.build_request(
        request.method, url, headers=headers, content=body
    )
    try:
        upstream = await ctx.client.send(upstream_req, stream=True)
    except httpx.HTTPError as exc:
        log.warning("API upstream %s failed: %s", ctx.settings.api_upstream, exc)
        return error(502, "api_unavailable", "the API is not reachable")
    out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _DROP_FROM_UPSTREAM}
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=out_headers,
        background=BackgroundTask(upstream.aclose),
    )


ROUTES = [Route("/api/{path:path}", proxy, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])]
