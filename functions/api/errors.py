"""The one error envelope, `{"error": code, "message": text}`, for every failure the API returns."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from functions.api.models import PATTERN_HINTS, WHITESPACE

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


def _where(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if part in ("body", "query", "path", "header"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _choices(expected: str) -> str:
    # pydantic's "'', 'low', 'medium' or 'high'" -> "low, medium, or high"
    values = [v for v in re.findall(r"'([^']*)'", expected) if v]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + ("," if len(values) > 2 else "") + \
        f" or {values[-1]}"


def _describe(err: Mapping[str, Any]) -> str:
    """One validation error as the routes phrase their own checks (`toolRules[0].name is required`)."""
    where = _where(err.get("loc", ()))
    kind, ctx, value = err.get("type"), err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return f"{where} is required" if where else "request body is required"
    if kind == "json_invalid":
        return "request body must be valid JSON"
    blank = isinstance(value, str) and not value.strip(WHITESPACE)
    if kind == "string_too_short" and (ctx.get("min_length") == 1 or blank):
        return f"{where} is required"
    if kind == "string_too_short":
        return f"{where} must be at least {ctx.get('min_length')} characters"
    if kind == "too_short":
        return f"{where} needs at least one item" if ctx.get("min_length") == 1 else f"{where}: {err.get('msg')}"
    if kind == "literal_error":
        return f"{where} must be {_choices(str(ctx.get('expected', '')))}"
    if kind == "value_error":  # a model's own rule (functions.api.services.access.SubjectIn): it names its fields
        return str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        return f"{where} must be {'at least' if kind == 'greater_than_equal' else 'at most'} {bound}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{where} must be an integer"
    if kind == "string_pattern_mismatch":
        if blank:
            return f"{where} is required"
        hint = PATTERN_HINTS.get(str(ctx.get("pattern", "")))
        if hint is not None:
            return f"{where} {str(value)[:80]!r} {hint}" if "DNS" in hint else f"{where} {hint}"
    msg = str(err.get("msg", "invalid value"))
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
