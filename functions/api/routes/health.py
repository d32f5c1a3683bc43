"""`/health` (process up) and `/ready` (configured backends answer)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from functions.api.context import ctx_of

router = APIRouter(tags=["health"])


# No response model: building one loads pydantic.v1 (FastAPI's v1 check, ~30 ms), and this
# module is mounted by every cold start (functions/api/lazy_routes.py).
@router.get("/health", response_model=None)
async def health() -> dict[str, Any]:
    """Liveness."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: 503 while a configured identity store does not answer."""
    ctx = ctx_of(request)
    checks: dict[str, str] = {}
    if ctx.settings.postgres_dsn:
        checks["postgres"] = "ok" if ctx.store is not None and await ctx.store.ping() else "unavailable"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)
