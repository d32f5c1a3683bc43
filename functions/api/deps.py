"""The FastAPI dependencies routes declare: the caller's principal, and the backends, built lazily.

Routes get the identity store (`Store`), the caller (`AnyPrincipal`, `UserPrincipal`,
`AdminPrincipal`, `MaybePrincipal`; how credentials are checked lives in `functions.api.auth`),
Kubernetes (`Kube`) and ClickHouse (`Events`) from here, and run blocking client calls through
`kcall`/`qcall`, which map backend failures onto the error envelope.

A backend that is not configured (or not reachable yet) makes only the routes needing it answer
503; the rest of the API keeps working. Pre-built backends passed to `create_app` win: tests
pass a clickhouse-connect client, a `SentinelKube` (or an `ApiClient`) and a Temporal client.

Each client library is imported where its backend is first built (kubernetes in `_kube` via
`SentinelKube`, clickhouse-connect in `_events`, temporalio in `temporal_client`), so the API's
cold start pays for none of them; the first request needing one pays its import once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from functions.api.auth import authenticate
from functions.api.context import ApiContext, ctx_of
from functions.api.errors import ApiError, bad_request, unauthorized, unavailable
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.identity.store import IdentityStore
from mcp_sentinel.kube.errors import Forbidden, Invalid, KubeError, NotFound, Unavailable
from mcp_sentinel.kube.resources import SentinelKube
from mcp_sentinel.lazy_errors import error_type
from mcp_sentinel.storage.queries import EventQueries

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient

log = logging.getLogger(__name__)
T = TypeVar("T")
KUBE_TIMEOUT = 10.0


def kube_of(ctx: ApiContext) -> SentinelKube:
    """The Kubernetes access layer, built from settings on first use, or 503 `service_unavailable`."""
    if ctx.kube is not None:
        return ctx.kube
    env = dict(ctx.settings.kube_environ)
    if not env.get("KUBECONFIG") and not env.get("KUBERNETES_SERVICE_HOST"):
        raise unavailable("kubernetes not available (set KUBECONFIG or run in a cluster)")
    from mcp_sentinel.kube.client import load_kube

    try:
        kube = SentinelKube(load_kube(env))
    except KubeError as exc:
        raise unavailable(f"kubernetes not available: {exc.message}") from None
    ctx.kube = kube
    return kube


def require_kube(request: Request) -> SentinelKube:
    """The Kubernetes access layer, or 503 `service_unavailable`."""
    return kube_of(ctx_of(request))


def _events(ctx: ApiContext) -> EventQueries:
    if ctx.clickhouse is not None:
        return ctx.clickhouse
    if not ctx.settings.clickhouse_url:
        raise unavailable("ClickHouse not configured (set CLICKHOUSE_URL)")
    from mcp_sentinel.storage.client import clickhouse_client_from_url
    from mcp_sentinel.storage.migrations import migrate

    try:
        # Connect to `default` and apply the (idempotent, versioned) migrations: on a fresh stack
        # the API may answer queries before the processor has stored anything.
        current = clickhouse_client_from_url(ctx.settings.clickhouse_url, "default")
        migrate(current, ctx.settings.clickhouse_db, retention_days=None)
    except Exception as exc:  # connection refused, bad URL: the route is unavailable, not broken
        log.warning("ClickHouse not reachable: %s", exc)
        raise unavailable("ClickHouse not reachable") from None
    queries = EventQueries(current, ctx.settings.clickhouse_db)
    ctx.clickhouse = queries
    return queries


def require_events(request: Request) -> EventQueries:
    """Event queries over ClickHouse, or 503 `service_unavailable`."""
    return _events(ctx_of(request))


def require_store(request: Request) -> IdentityStore:
    """The identity store, or 503 when POSTGRES_DSN is not configured/reachable."""
    store = ctx_of(request).store
    if store is None:
        raise unavailable("identity store not configured (set POSTGRES_DSN)")
    return store


async def optional_principal(request: Request) -> Principal | None:
    """Dependency: the principal if credentials were sent, else None."""
    return await authenticate(request)


async def require_principal(request: Request) -> Principal:
    """Dependency: any authenticated caller (401 otherwise)."""
    p = await authenticate(request)
    if p is None:
        raise unauthorized()
    return p


async def require_user(request: Request) -> Principal:
    """Dependency: an authenticated *user* (service keys have no subject → 401)."""
    p = await require_principal(request)
    if not p.subject:
        raise unauthorized("a user credential is required (service API keys have no user)")
    return p


async def require_admin(request: Request) -> Principal:
    """Dependency: role admin (401 anonymous, 403 otherwise)."""
    p = await require_principal(request)
    if not p.is_admin:
        raise ApiError(403, "forbidden", "insufficient permissions")
    return p


Kube = Annotated[SentinelKube, Depends(require_kube)]
Events = Annotated[EventQueries, Depends(require_events)]
Store = Annotated[IdentityStore, Depends(require_store)]
AnyPrincipal = Annotated[Principal, Depends(require_principal)]
UserPrincipal = Annotated[Principal, Depends(require_user)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def temporal_client(ctx: ApiContext) -> TemporalClient | None:
    """The Temporal client, connecting on first use; None when not configured or unreachable."""
    if ctx.temporal is not None:
        return ctx.temporal
    if not ctx.settings.temporal_address:
        return None
    async with ctx.temporal_lock:
        if ctx.temporal is None:
            from temporalio.client import Client

            try:
                ctx.temporal = await asyncio.wait_for(
                    Client.connect(ctx.settings.temporal_address, namespace=ctx.settings.temporal_namespace), 5.0
                )
            except Exception as exc:
                log.warning("Temporal not reachable at %s: %s", ctx.settings.temporal_address, exc)
                return None
    return ctx.temporal


def kube_error(exc: KubeError) -> ApiError:
    """Map a Kubernetes failure onto the envelope (never a 500 for an expected cluster answer)."""
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", exc.message or "not found")
    if isinstance(exc, Invalid):
        causes = "; ".join(f"{c.get('field', '')}: {c.get('message', '')}" for c in exc.causes[:3])
        return bad_request(causes or exc.message)
    if isinstance(exc, Forbidden):
        return ApiError(503, "kubernetes_unavailable", f"kubernetes refused the API's credentials: {exc.message}")
    if isinstance(exc, Unavailable):
        return ApiError(503, "kubernetes_unavailable", "kubernetes not available")
    if exc.status == 409:
        return ApiError(409, "conflict", exc.message or "conflict")
    return ApiError(502, "kubernetes_error", exc.message or "kubernetes request failed")


async def kcall(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking Kubernetes call off the event loop with the 10 s budget of §7.8."""
    try:
        return await asyncio.wait_for(run_in_threadpool(fn, *args, **kwargs), KUBE_TIMEOUT)
    except TimeoutError:
        raise ApiError(503, "kubernetes_unavailable", "kubernetes did not answer within 10s") from None
    except KubeError as exc:
        raise kube_error(exc) from None


async def qcall(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking ClickHouse query off the event loop; failures become 500 `query_failed`."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except ApiError:
        raise
    except error_type("clickhouse_connect.driver.exceptions", "OperationalError"):
        log.warning("ClickHouse unreachable", exc_info=True)
        raise unavailable("ClickHouse not reachable") from None
    except Exception:
        log.exception("ClickHouse query failed")
        raise ApiError(500, "query_failed", "query failed") from None
