"""The UI function's app factory: sign-in, the `/api` proxy, `config.js` and the static dashboard.

A plain Starlette app: every UI route takes the raw request (no OpenAPI, no dependency
injection, no model validation), and `import fastapi` alone costs about 250 ms of a cold start
here against about 80 ms for Starlette (bench/import_time.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from functions.ui import auth_routes, proxy
from functions.ui.context import UiContext, ctx_of, dumps, error
from functions.ui.oidc_flow import OidcFlow
from functions.ui.ratelimit import LoginLimiter
from functions.ui.security import https_redirect, is_https, security_headers
from functions.ui.sessions import SessionStore, load_or_create_secret
from functions.ui.settings import UiSettings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
_CACHE = {".html": "no-cache", ".js": "max-age=60", ".css": "max-age=60"}


def config_js(settings: UiSettings) -> str:
    """The browser's runtime configuration (never any credential)."""
    lines = {
        "MCP_API_BASE": settings.api_base,
        "MCP_DEFAULTS": {"namespace": settings.default_namespace, "policyVersion": settings.default_policy_version},
        "MCP_PLATFORM_MODE": settings.platform_mode,
        "MCP_GOOGLE_CLIENT_ID": settings.google_client_id,
        "MCP_FRONT_DOOR_URL": settings.front_door_url,
    }
    return "".join(f"window.{k} = {dumps(v)};\n" for k, v in lines.items())


def create_app(settings: UiSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The UI app; `transport` lets a caller route upstream calls differently (the default is real HTTP)."""
    secret = load_or_create_secret(settings.session_dir, settings.session_secret)
    store = SessionStore(settings.session_dir, secret)
    ctx = UiContext(settings=settings, store=store, limiter=LoginLimiter(settings.limits), oidc_flow=OidcFlow(secret))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.upstream_timeout, connect=5.0)
        # Long-lived streams (SSE) must not be cut by a read timeout; the connect timeout still applies.
        ctx.client = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        pruned = await ctx.store.prune()
        if pruned:
            log.info("pruned %d expired UI sessions", pruned)
        try:
            yield
        finally:
            await ctx.client.aclose()
            ctx.client = None

    headers = security_headers(settings)

    async def harden(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        target = https_redirect(request, settings)
        response: Response = RedirectResponse(target, status_code=308) if target else await call_next(request)
        response.headers.update(headers)
        if is_https(request):
            response.headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
        path = request.url.path
        if path.startswith(("/api", "/auth/")):
            response.headers["Cache-Control"] = "no-store, no-cache, must-revalidate"
        return response

    async def health(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def config(request: Request) -> Response:
        return Response(
            config_js(ctx_of(request).settings),
            media_type="application/javascript",
            headers={"Cache-Control": "no-cache"},
        )

    async def static(request: Request) -> Response:
        return serve_static(request.path_params["path"])

    async def http_error(_request: Request, exc: Exception) -> Response:
        # e.g. POST to a static path: the same JSON envelope as every other UI error.
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, exc.detail, dict(exc.headers or {}))

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/config.js", config, methods=["GET"]),
            *auth_routes.ROUTES,
            *proxy.ROUTES,
            Route("/{path:path}", static, methods=["GET"]),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=harden)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app


def serve_static(path: str) -> Response:
    """A file under static/ (`/` is index.html); 404 for anything else, including `..` escapes."""
    rel = path.strip("/") or "index.html"
    target = (STATIC_DIR / rel).resolve()
    if not target.is_relative_to(STATIC_DIR) or not target.is_file():
        return error(404, "not_found", f"no such page: /{rel}")
    cache = _CACHE.get(target.suffix, "max-age=300")
    return FileResponse(target, headers={"Cache-Control": cache})

