"""An aiohttp reverse proxy that streams both ways (SSE-safe: nothing is buffered).

Routes, first match wins:
  /__front_door/health        the front door's own liveness
  /ingest/<path>              -> ingest /<path>            (prefix stripped)
  /<server>/mcp[/<path>]      -> that server's sidecar /mcp[/<path>]: the static servers (MCP_SERVERS),
                                 then the dynamic routes file (MCP_ROUTES_FILE); 404 for any other server name
  anything else (incl. /api/*) -> UI (the UI proxies /api/* to the API)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from localstack.front_door.routes_file import RESERVED_NAMES, RouteTable
from localstack.front_door.settings import SERVER_NAME, FrontDoorSettings

log = logging.getLogger(__name__)

HEALTH_PATH = "/__front_door/health"

# RFC 9110 §7.6.1 hop-by-hop headers, plus the ones aiohttp recomputes for the new connection.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
    )
)
_SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
_SETTINGS_KEY = web.AppKey("settings", FrontDoorSettings)
_ROUTES_KEY = web.AppKey("routes", RouteTable)
# route()'s upstream name for a server-shaped path no route serves: answered 404 here, never sent to the UI.
UNKNOWN_SERVER = ""


def route(settings: FrontDoorSettings, path: str, dynamic: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """(upstream name, upstream base URL, upstream path) for an incoming path.

    `/<server>/mcp...` belongs to MCP servers: a name with no route gives (UNKNOWN_SERVER, "", path),
    so a retired server's URL answers 404 rather than whatever the UI makes of it.
    """
    if path == "/ingest" or path.startswith("/ingest/"):
        return "ingest", settings.ingest_url, path[len("/ingest"):] or "/"
    first, _, rest = path.lstrip("/").partition("/")
    if rest == "mcp" or rest.startswith("mcp/"):
        if first in settings.servers:
            return first, settings.servers[first], "/" + rest
        if dynamic and first in dynamic:
            return first, dynamic[first], "/" + rest
        if SERVER_NAME.match(first) and first not in RESERVED_NAMES:
            return UNKNOWN_SERVER, "", path
    return "ui", settings.ui_url, path


def _forward_headers(request: web.Request, prefix: str) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        if name.lower() not in _HOP_BY_HOP:
            headers.add(name, value)
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    if prefix:
        headers["X-Forwarded-Prefix"] = prefix
    return headers


async def _proxy(request: web.Request) -> web.StreamResponse:
    settings = request.app[_SETTINGS_KEY]
    session = request.app[_SESSION_KEY]
    name, base, path = route(settings, request.path, request.app[_ROUTES_KEY].routes)
    if name == UNKNOWN_SERVER:
        return web.json_response({"error": "unknown_server", "path": request.path}, status=404)
    prefix = request.path[: len(request.path) - len(path)] if request.path.endswith(path) else ""
    target = base + path + (f"?{request.query_string}" if request.query_string else "")
    body = request.content if request.body_exists else None
    try:
        upstream = await session.request(
            request.method, target, headers=_forward_headers(request, prefix), data=body,
            allow_redirects=False,
        )
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        log.warning("upstream %s unreachable at %s: %s", name, target, exc)
        return web.json_response({"error": "upstream_unavailable", "upstream": name}, status=502)
    try:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for hname, value in upstream.headers.items():
            if hname.lower() not in _HOP_BY_HOP:
                response.headers.add(hname, value)
        if upstream.content_length is not None and "chunked" not in upstream.headers.get("Transfer-Encoding", ""):
            response.content_length = upstream.content_length
        await response.prepare(request)
        # iter_any yields whatever bytes have arrived: each SSE event is flushed as it comes.
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        # Headers are already sent; all we can do is cut the stream so the client sees the failure.
        log.warning("upstream %s broke off mid-response: %s", name, exc)
        if request.transport is not None:
            request.transport.close()
        return response
    finally:
        upstream.release()


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def create_app(settings: FrontDoorSettings) -> web.Application:
    """The front-door application (the client session is opened on start-up, closed on cleanup)."""
    app = web.Application(client_max_size=0)
    app[_SETTINGS_KEY] = settings

    async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
        # No total timeout: SSE streams and long MCP calls may last as long as the client wants.
        timeout = aiohttp.ClientTimeout(total=None, connect=settings.connect_timeout, sock_read=None)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            app[_SESSION_KEY] = session
            yield

    table = RouteTable(settings.routes_file)
    table.refresh()
    app[_ROUTES_KEY] = table

    async def _watch_routes(_app: web.Application) -> AsyncIterator[None]:
        # A stat per interval: a route the reconciler adds is served within one interval.
        async def loop() -> None:
            while True:
                await asyncio.sleep(settings.routes_poll_interval)
                table.refresh()

        task = asyncio.create_task(loop()) if settings.routes_file is not None else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(_session_ctx)
    app.cleanup_ctx.append(_watch_routes)
    app.router.add_get(HEALTH_PATH, _health)
    app.router.add_route("*", "/{tail:.*}", _proxy)
    return app
