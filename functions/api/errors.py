"""The one error envelope, `{"error": code, "message": text}`, for every failure the API returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

_CODE_BY_STATUS = {
    400: "invalid_request_body",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ApiError(Exception):
    """Raise from handlers and dependencies to return an enveloped error."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An enveloped JSON error response."""
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=dict(headers or {}))


def unauthorized(message: str = "authentication required") -> ApiError:
    """401 `unauthorized`."""
    return ApiError(401, "unauthorized", message)


def forbidden(message: str = "insufficient permissions") -> ApiError:
    """403 `forbidden`."""
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    """404 `not_found`."""
    return ApiError(404, "not_found", message)


def bad_request(message: str, code: str = "invalid_request_body") -> ApiError:
    """400 with the given code."""
    return ApiError(400, code, message)


def not_configured(message: str) -> ApiError:
    """404 `not_configured`: a feature this deployment does not set up (OIDC sign-in) does not exist here.

    Not a 503: nothing is down and retrying will not help; the client should not offer the feature.
    """
    return ApiError(404, "not_configured", message)


def unavailable(message: str) -> ApiError:
    """503 `service_unavailable` (a backend this route needs is not configured or not reachable)."""
    return ApiError(503, "service_unavailable", message)


def _describe(err: Mapping[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc)
    msg = str(err.get("msg", "invalid value"))
    if err.get("type") == "missing":
        return f"{where} is required" if where else "request body is required"
    if err.get("type") == "json_invalid":
        return "request body must be valid JSON"
    return f"{where}: {msg}" if where else msg


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route serves at the scope's path (routers of included modules descended)."""
    found: set[str] = set()
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            found.update(allowed_methods(inner.routes, scope))
            continue
        methods = getattr(route, "methods", None)
        if methods and route.matches({**scope, "method": next(iter(methods))})[0] is Match.FULL:
            found.update(methods)
    return sorted(found)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error (ours, routing 404/405, validation 422) through the envelope."""

    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODE_BY_STATUS.get(exc.status_code, "internal_error")
        detail = exc.detail if isinstance(exc.detail, str) else code
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route"
        if exc.status_code == 405:
            detail = "method not allowed"
            # Starlette's Allow names the methods of the first route matching the path only; a path
            # served by one route per method (GET, PATCH, DELETE) must list them all.
            headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request.scope))
        return error_response(exc.status_code, code, detail, headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        in_body = any(e.get("loc", ("",))[0] == "body" for e in errors)
        code = "invalid_request_body" if in_body or not errors else "invalid_query_param"
        message = "; ".join(_describe(e) for e in errors[:3]) or "invalid request"
        return error_response(400, code, message)

    async def on_unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return error_response(500, "internal_error", "internal error")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
