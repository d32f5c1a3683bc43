"""Mounting the API's route modules when a request first needs them.

FastAPI analyses every endpoint when its route is built (signature, dependencies, a pydantic
adapter per parameter), which for the API's 76 routes costs about 100 ms, most of its cold
start beyond FastAPI itself. A scaled-from-zero API answers its probes and its first request
after building only the modules that request needs; the rest follow as they are asked for.

Matching stays as if every module had been mounted at start-up: routes are kept in
`GROUPS` order whatever order they load in, a path no module claims (a 404, `/api/docs`,
`/api/openapi.json`) mounts everything first, and so does asking the app for its OpenAPI.
Once the app is serving, `warm` builds the rest in the background, so only the requests of the
first second or so ever pay for a mount.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from functions.api.routes import EAGER, GROUPS, RouteGroup

log = logging.getLogger(__name__)

PACKAGE = "functions.api.routes"
# Let the requests that woke the app go first: the warm-up competes with them for the CPU.
WARM_AFTER_SECONDS = 1.0


class RouteMounter:
    """Includes route modules into `app` on demand, in `groups` order, each at most once."""

    def __init__(self, app: FastAPI, groups: Iterable[RouteGroup] = GROUPS) -> None:
        self._app = app
        self._groups = tuple(groups)
        self._pending = {g.module: rank for rank, g in enumerate(self._groups)}
        # Route object id -> rank; FastAPI's own routes (OpenAPI, docs) are unranked and stay first.
        self._rank: dict[int, int] = {}
        original: Callable[[], dict[str, Any]] = app.openapi

        def openapi() -> dict[str, Any]:
            self.mount_all()
            return original()

        app.openapi = openapi  # type: ignore[method-assign]

    @property
    def pending(self) -> frozenset[str]:
        """Modules not mounted yet."""
        return frozenset(self._pending)

    def include(self, router: APIRouter, rank: int) -> None:
        """Include `router` so its routes are matched after every route of a lower rank."""
        routes = self._app.router.routes
        before = len(routes)
        self._app.include_router(router)
        for route in routes[before:]:
            self._rank[id(route)] = rank
        routes.sort(key=lambda r: self._rank.get(id(r), -1))  # stable: a module keeps its own order
        self._app.openapi_schema = None

    def mount(self, module: str) -> None:
        """Import `functions.api.routes.<module>` and include its router (no-op once mounted)."""
        rank = self._pending.pop(module, None)
        if rank is None:
            return
        try:
            router: APIRouter = importlib.import_module(f"{PACKAGE}.{module}").router
        except BaseException:
            self._pending[module] = rank  # the next request retries and gets the same error, not a 404
            raise
        self.include(router, rank)
        log.debug("mounted route module %s", module)

    def mount_eager(self, names: Iterable[str] = EAGER) -> None:
        """Mount the modules a cold start must serve at once (the platform's probes)."""
        for name in names:
            self.mount(name)

    def mount_all(self) -> None:
        """Mount every pending module."""
        for module in sorted(self._pending, key=self._pending.__getitem__):
            self.mount(module)

    async def warm(self, also: Iterable[str] = (), delay: float = WARM_AFTER_SECONDS) -> None:
        """After `delay`, import the pending modules (and the modules in `also`) off the event
        loop, then mount them; the loop is blocked only for the mounting itself (~30 ms here)."""
        await asyncio.sleep(delay)
        names = [f"{PACKAGE}.{m}" for m in sorted(self._pending, key=self._pending.__getitem__)]
        try:
            await asyncio.to_thread(_import_all, [*names, *also])
            self.mount_all()
        except Exception:  # the request that needs the module reports the error; the app keeps serving
            log.warning("warming the API's route modules failed", exc_info=True)

    def mount_for(self, path: str) -> None:
        """Mount whatever may answer `path`; a path no module claims mounts all, so its 404 or 405 is right."""
        if not self._pending:
            return
        claimed = [g for g in self._groups if g.serves(path)]
        if not claimed:
            self.mount_all()
            return
        for group in claimed:
            self.mount(group.module)


def _import_all(names: Iterable[str]) -> None:
    for name in names:
        importlib.import_module(name)


class MountOnDemand:
    """ASGI middleware: mounts the route modules a request's path needs before the router sees it.

    It sits inside the body-limit middleware, so `/api/v1/...` arrives already mapped onto `/api/...`.
    """

    def __init__(self, app: ASGIApp, mounter: RouteMounter) -> None:
        self.app = app
        self.mounter = mounter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.mounter.mount_for(scope["path"])
        await self.app(scope, receive, send)
