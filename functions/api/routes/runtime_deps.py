"""Backends of the governance and analytics routes, built lazily from settings on first use.

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
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from functions.api.auth import ctx_of
from functions.api.context import ApiContext
from functions.api.errors import ApiError, bad_request, unavailable
from mcp_sentinel.kube.errors import Forbidden, Invalid, KubeError, NotFound, Unavailable
from mcp_sentinel.kube.resources import SentinelKube
from mcp_sentinel.lazy_errors import error_type
from mcp_sentinel.storage.queries import EventQueries

log = logging.getLogger(__name__)
T = TypeVar("T")
KUBE_TIMEOUT = 10.0


def _kube(ctx: ApiContext) -> SentinelKube:
    current = ctx.kube
    if isinstance(current, SentinelKube):
        return current
    if current is not None:  # a raw kubernetes ApiClient
        built = SentinelKube(current)
        ctx.kube = built
        return built
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
    return _kube(ctx_of(request))


def _events(ctx: ApiContext) -> EventQueries:
    current = ctx.clickhouse
    if isinstance(current, EventQueries):
        return current
    if current is None:
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


Kube = Annotated[SentinelKube, Depends(require_kube)]
Events = Annotated[EventQueries, Depends(require_events)]

async def temporal_client(ctx: ApiContext) -> Any | None:
    """The Temporal client, connecting on first use; None when not configured or unreachable."""
    if ctx.temporal is not None:
        return ctx.temporal
    if not ctx.settings.temporal_address:
        return None
    lock = ctx.extras.setdefault("temporal_lock", asyncio.Lock())
    async with lock:
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
