"""The API function's app factory.

Routers live in `functions/api/routes/<resource>.py`, listed with the paths they serve in
`functions.api.routes.GROUPS` (append yours there); each is mounted when a request first needs
it (`functions.api.lazy_routes`), so a cold start does not build all 76 routes. Backends
(identity store, ClickHouse, Kubernetes, Temporal) are optional and are exposed on
`app.state.ctx` (`ApiContext`); pass pre-built ones to `create_app` or let the lifespan build
the identity store from settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

from functions.api import contract
from functions.api.context import ApiContext, StoreOnlyProvisioner, TeamProvisioner, TemporalProvisioner
from functions.api.errors import install_error_handlers
from functions.api.lazy_routes import MountOnDemand, RouteMounter
from functions.api.limits import BodyLimitMiddleware
from functions.api.oidc import OidcVerifier
from functions.api.routes import GROUPS
from functions.api.settings import ApiSettings
from mcp_sentinel.identity.lockout import LoginLockout
from mcp_sentinel.identity.passwords import PasswordHasher
from mcp_sentinel.identity.store import IdentityStore
from mcp_sentinel.identity.tokens import TokenIssuer

log = logging.getLogger(__name__)


async def seed_users(ctx: ApiContext) -> None:
    """Local test-mode and bootstrap admin accounts (existing accounts are left untouched)."""
    s, store = ctx.settings, ctx.store
    if store is None:
        return
    seeds: list[tuple[str, str, str]] = []
    if s.dev_login_enabled:
        seeds += [(s.dev_user_email, s.dev_user_password, "user"), (s.dev_admin_email, s.dev_admin_password, "admin")]
    if s.admin_email and s.admin_password:
        seeds.append((s.admin_email, s.admin_password, "admin"))
    for email, password, role in seeds:
        if await store.get_user_by_email(email) is None:
            await store.ensure_password_user(email, role, await ctx.hasher.hash(password))
            log.info("seeded %s user %s", role, email)


async def open_store(settings: ApiSettings) -> IdentityStore:
    """Connect to Postgres, retrying every 2 s for up to PLATFORM_DB_STARTUP_TIMEOUT seconds."""
    deadline = time.monotonic() + settings.db_startup_timeout
    while True:
        try:
            return await IdentityStore.open(settings.postgres_dsn, wait_seconds=10.0)
        except Exception:
            if time.monotonic() >= deadline:
                raise
            log.warning("identity store not reachable yet; retrying", exc_info=True)
            await asyncio.sleep(2.0)


def create_app(
    settings: ApiSettings,
    *,
    store: IdentityStore | None = None,
    provisioner: TeamProvisioner | None = None,
    registry: CollectorRegistry | None = None,
    extra_routers: list[APIRouter] | None = None,
    **backends: Any,
) -> FastAPI:
    """The API app. `backends` may carry `clickhouse`, `kube`, `temporal` clients (each optional)."""
    ring = settings.key_ring()

    async def connect_temporal() -> Any:
        from functions.api.deps import temporal_client  # the client library loads with the first team

        return await temporal_client(ctx)

    if provisioner is None:
        # Teams get their Kubernetes namespace through the ProvisionTeam workflow when Temporal is configured.
        provisioner = (
            TemporalProvisioner(connect_temporal, settings.temporal_address, settings.provisioning_wait_seconds)
            if settings.temporal_address
            else StoreOnlyProvisioner()
        )
    ctx = ApiContext(
        settings=settings,
        hasher=PasswordHasher(settings.hash_params),
        lockout=LoginLockout(),
        provisioner=provisioner,
        store=store,
        tokens=TokenIssuer(ring, settings.access_token_ttl) if ring else None,
        temporal=backends.pop("temporal", None),
    )
    _adopt_backends(ctx, backends.pop("kube", None), backends.pop("clickhouse", None))
    ctx.extras.update(backends)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        owns_store = ctx.store is None and bool(settings.postgres_dsn)
        if owns_store:
            ctx.store = await open_store(settings)
        if settings.oidc_enabled and ctx.oidc is None:
            ctx.oidc = OidcVerifier(settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url)
        # jwt loads with the first token otherwise (mcp_sentinel/identity/tokens.py).
        warm = asyncio.create_task(mounter.warm(also=("jwt",) if ctx.tokens else ()), name="api-warm")
        try:
            await seed_users(ctx)
            yield
        finally:
            warm.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm
            inventory = ctx.extras.get("inventory")  # live-inventory probes still running (routes/servers.py)
            if inventory is not None:
                await inventory.aclose()
            if ctx.oidc is not None:
                await ctx.oidc.aclose()
            if owns_store and ctx.store is not None:
                await ctx.store.close()
                ctx.store = None

    app = FastAPI(
        title="mcp-sentinel API",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    mounter = RouteMounter(app)
    contract.install(app)  # after the mounter: the document covers every route module
    mounter.mount_eager()
    for router in extra_routers or []:
        mounter.include(router, rank=len(GROUPS))
    app.state.route_mounter = mounter
    app.add_middleware(MountOnDemand, mounter=mounter)  # innermost: sees /api/v1 paths already mapped
    app.add_middleware(BodyLimitMiddleware)
    _install_metrics(app, registry or CollectorRegistry())
    return app


def _adopt_backends(ctx: ApiContext, kube: Any, clickhouse: Any) -> None:
    """Wrap pre-built clients (tests pass a kubernetes `ApiClient` or a clickhouse-connect client)
    in the access layers the routes use; their modules load only when a client is given."""
    if kube is not None:
        from mcp_sentinel.kube.resources import SentinelKube

        ctx.kube = kube if isinstance(kube, SentinelKube) else SentinelKube(kube)
    if clickhouse is not None:
        from mcp_sentinel.storage.queries import EventQueries

        ctx.clickhouse = (
            clickhouse if isinstance(clickhouse, EventQueries) else EventQueries(clickhouse, ctx.settings.clickhouse_db)
        )


def _install_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    requests = Counter(
        "sentinel_api_requests", "API requests by route and status", ["method", "route", "status"], registry=registry
    )
    latency = Histogram("sentinel_api_request_seconds", "API request latency", ["route"], registry=registry)
    app.state.metrics_registry = registry

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        # The route template, never the raw path: raw paths carry ids and would explode cardinality.
        name = getattr(route, "path", "unmatched")
        requests.labels(request.method, name, str(response.status_code)).inc()
        latency.labels(name).observe(time.perf_counter() - t0)
        return response
