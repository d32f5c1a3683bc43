"""Route modules mounted on first need (functions/api/lazy_routes.py) behave as if mounted at start-up."""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute

import functions.api.routes as routes_pkg
from functions.api.app import create_app
from functions.api.lazy_routes import MountOnDemand, RouteMounter
from functions.api.routes import GROUPS, RouteGroup
from tests.helpers.api import ADMIN_KEY, base_settings

ADMIN = {"x-api-key": ADMIN_KEY}


def _flat(routes: list[BaseRoute]) -> list[BaseRoute]:
    # FastAPI >= 0.16x keeps an included router as one entry that points at the original router.
    out: list[BaseRoute] = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out.extend(_flat(inner.routes) if inner is not None else [r])
    return out


def _paths(app: FastAPI) -> list[str]:
    return [getattr(r, "path", "") for r in _flat(app.router.routes)]


def _signature(routes: list[BaseRoute]) -> list[tuple[str, tuple[str, ...]]]:
    return [(getattr(r, "path", ""), tuple(sorted(getattr(r, "methods", None) or ()))) for r in _flat(routes)]


def _app() -> FastAPI:
    return create_app(base_settings())


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def test_every_route_module_is_listed_and_claims_exactly_its_own_paths() -> None:
    modules = {m.name for m in pkgutil.iter_modules(routes_pkg.__path__)}
    assert modules == {g.module for g in GROUPS}
    for group in GROUPS:
        router = importlib.import_module(f"functions.api.routes.{group.module}").router
        for route in router.routes:
            path = route.path
            claimed = [g.module for g in GROUPS if g.serves(path)]
            assert claimed == [group.module], f"{path} of {group.module} is claimed by {claimed}"


def test_prefixes_match_on_segment_boundaries() -> None:
    group = RouteGroup("users", ("/api/users",))
    assert group.serves("/api/users") and group.serves("/api/users/") and group.serves("/api/users/42")
    assert not group.serves("/api/usersx") and not group.serves("/api/user")


def test_a_new_app_has_only_the_probe_routes_and_the_rest_pending() -> None:
    app = _app()
    mounter: RouteMounter = app.state.route_mounter
    assert mounter.pending == {g.module for g in GROUPS} - {"health"}
    assert {"/health", "/ready"} <= set(_paths(app))
    assert not any(p.startswith("/api/runtime") for p in _paths(app))


def test_mounting_in_any_order_gives_the_start_up_order() -> None:
    eager, lazy = _app(), _app()
    eager.state.route_mounter.mount_all()
    for group in reversed(GROUPS):
        lazy.state.route_mounter.mount(group.module)
    assert _signature(lazy.router.routes) == _signature(eager.router.routes)
    assert len([p for p in _paths(eager) if p.startswith("/api/")]) > 70


async def test_a_request_mounts_what_it_needs_and_nothing_else() -> None:
    app = _app()
    async with _client(app) as c:
        r = await c.get("/api/runtime/policy", params={"server": "nope"}, headers=ADMIN)
    assert r.status_code == 503, r.text  # the policy route answered: no Kubernetes backend in this test
    assert r.json()["error"] == "service_unavailable"
    pending = app.state.route_mounter.pending
    assert "policy" not in pending and "teams" in pending and "governance" in pending


async def test_the_v1_alias_mounts_the_mapped_path() -> None:
    app = _app()
    async with _client(app) as c:
        r = await c.get("/api/v1/auth/me", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert "auth" not in app.state.route_mounter.pending


async def test_an_unclaimed_path_mounts_everything_so_its_404_and_405_are_right() -> None:
    app = _app()
    async with _client(app) as c:
        missing = await c.get("/api/no-such-thing", headers=ADMIN)
        assert missing.status_code == 404
        assert app.state.route_mounter.pending == frozenset()
        wrong_method = await c.put("/api/runtime/policy", headers=ADMIN)
    assert wrong_method.status_code == 405


async def test_openapi_lists_every_route_on_a_cold_app() -> None:
    cold, eager = _app(), _app()
    eager.state.route_mounter.mount_all()
    async with _client(cold) as c:
        spec = (await c.get("/api/openapi.json")).json()
    assert spec["paths"].keys() == eager.openapi()["paths"].keys()
    assert "/api/runtime/grants" in spec["paths"]
    # Asked programmatically, a cold app mounts everything first as well.
    assert _app().openapi()["paths"].keys() == spec["paths"].keys()


def test_a_module_that_fails_to_import_stays_pending_and_fails_again() -> None:
    app = FastAPI()
    mounter = RouteMounter(app, (RouteGroup("no_such_module", ("/api/broken",)),))
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError):
            mounter.mount_for("/api/broken/x")
        assert mounter.pending == {"no_such_module"}


async def test_a_failing_module_answers_500_and_the_app_keeps_serving() -> None:
    app = FastAPI()
    mounter = RouteMounter(app, (RouteGroup("health", ("/health",)), RouteGroup("no_such_module", ("/api/broken",))))
    mounter.mount_eager(["health"])
    app.add_middleware(MountOnDemand, mounter=mounter)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        assert (await c.get("/api/broken/x")).status_code == 500
        assert (await c.get("/health")).json() == {"status": "ok"}


async def test_warm_mounts_everything_in_the_background() -> None:
    app = _app()
    mounter: RouteMounter = app.state.route_mounter
    await mounter.warm(also=("jwt",), delay=0)
    assert mounter.pending == frozenset()
    eager = _app()
    eager.state.route_mounter.mount_all()
    assert _signature(app.router.routes) == _signature(eager.router.routes)


async def test_warm_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    mounter = RouteMounter(FastAPI(), (RouteGroup("no_such_module", ("/api/broken",)),))
    with caplog.at_level(logging.WARNING, logger="functions.api.lazy_routes"):
        await mounter.warm(delay=0)
    assert mounter.pending == {"no_such_module"}
    assert "warming the API's route modules failed" in caplog.text


async def test_served_app_warms_after_start_up() -> None:
    app = create_app(base_settings())
    mounter: RouteMounter = app.state.route_mounter
    async with app.router.lifespan_context(app):
        assert "governance" in mounter.pending
        task = next(t for t in asyncio.all_tasks() if t.get_name() == "api-warm")
        await task
        assert mounter.pending == frozenset()
