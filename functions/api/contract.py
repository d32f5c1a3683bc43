"""The OpenAPI document as the API's contract: every status a route can answer, with the one error model.

Route modules declare their success responses and models; what every route shares is added here,
once, when the document is built: the error envelope (`ErrorBody`) under each status the shared
machinery can produce. FastAPI's default 422 is replaced, since validation errors answer 400
(`functions.api.errors`). A generated client therefore knows every status it may see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from functions.api.models import ErrorBody

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
# Why each status can come back from any API route (functions.api.deps, .auth, .limits, .errors).
SHARED_ERRORS: dict[int, str] = {
    400: "Invalid request: a parameter or the body breaks a rule the schema cannot express",
    401: "No credentials, or credentials that are invalid, expired or of the wrong kind",
    403: "The caller may not act on this resource or namespace",
    404: "The resource (or a feature this deployment does not configure) does not exist",
    409: "Conflict with the current state (exists already, changed concurrently)",
    429: "Too many attempts; retry after the `Retry-After` seconds",
    502: "A backend (Kubernetes, Prometheus) answered with an unexpected error",
    503: "A backend this route needs is not configured or not reachable right now",
}
WITH_BODY_ERRORS: dict[int, str] = {413: "The request body is larger than the API accepts"}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the shared error responses to every `/api` operation of `schema` (idempotent)."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            responses: dict[str, Any] = op.setdefault("responses", {})
            responses.pop("422", None)
            errors = dict(SHARED_ERRORS) if path.startswith("/api/") else {503: SHARED_ERRORS[503]}
            if "requestBody" in op:
                errors.update(WITH_BODY_ERRORS)
            for status, why in errors.items():
                responses[str(status)] = {
                    "description": why,
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
    return schema


# The dependencies (functions.api.deps) that refuse a caller without credentials.
AUTHENTICATED = frozenset({"require_principal", "require_user", "require_admin"})
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
               "description": "A service API key, or a user's key (`mcpu_...`)"},
    "Bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "A platform access token from /api/auth/login, /signup or /oidc"},
}


def _needs_credentials(dependant: Any) -> bool:
    return any(
        getattr(d.call, "__name__", "") in AUTHENTICATED or _needs_credentials(d) for d in dependant.dependencies
    )


def _routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router (FastAPI >= 0.16x)
        if inner is not None:
            yield from _routes(inner.routes)
        elif isinstance(route, APIRoute):
            yield route


def secure(schema: dict[str, Any], routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """Mark the operations that answer 401 without credentials with the schemes they accept."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    paths = schema.get("paths", {})
    for route in _routes(routes):
        if not _needs_credentials(route.dependant):
            continue
        for method in route.methods or ():
            op = paths.get(route.path_format, {}).get(method.lower())
            if op is not None:
                op["security"] = [{"ApiKey": []}, {"Bearer": []}]
    return schema


def _at(pointer: str) -> str:
    return f"$response.body#/{pointer}"


def _access(kind: str) -> dict[str, str]:
    return {"namespace": _at(f"{kind}/namespace"), "name": _at(f"{kind}/name")}


# What a create returns that names the created object, for clients and stateful testing: (source
# path, method, status) -> (target path, target methods, parameters from the response body).
LINKS: tuple[tuple[str, str, str, str, tuple[str, ...], dict[str, str]], ...] = (
    ("/api/runtime/grants", "post", "200", "/api/runtime/grants/{namespace}/{name}", ("get", "patch", "delete"),
     _access("grant")),
    ("/api/runtime/sessions", "post", "200", "/api/runtime/sessions/{namespace}/{name}", ("get", "patch", "delete"),
     _access("session")),
    ("/api/runtime/servers", "post", "200", "/api/runtime/servers/{namespace}/{name}", ("get", "delete"),
     _access("server")),
    ("/api/deployments", "post", "200", "/api/deployments/{namespace}/{name}", ("delete",), _access("deployment")),
    ("/api/runtime/teams", "post", "201", "/api/runtime/teams/{team_ref}", ("get", "delete"),
     {"team_ref": _at("team/id")}),
    ("/api/runtime/teams", "post", "201", "/api/runtime/teams/{team_ref}/members", ("get",),
     {"team_ref": _at("team/id")}),
    ("/api/users", "post", "201", "/api/users/{user_id}", ("patch", "delete"), {"user_id": _at("user/id")}),
    ("/api/user/api-keys", "post", "200", "/api/user/api-keys/{key_id}", ("delete",), {"key_id": _at("key/id")}),
    ("/api/user/api-keys", "post", "200", "/api/user/api-keys/{key_id}/revoke", ("post",),
     {"key_id": _at("key/id")}),
    ("/api/user/registry-credentials", "post", "201", "/api/user/registry-credentials/{key_id}", ("delete",),
     {"key_id": _at("credential/id")}),
)


def link(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the OpenAPI links of LINKS (by the targets' operationIds) to their source responses."""
    paths = schema.get("paths", {})
    for source, method, status, target, methods, parameters in LINKS:
        response = paths.get(source, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        links = response.setdefault("links", {})
        for target_method in methods:
            op = paths.get(target, {}).get(target_method)
            if op is not None and "operationId" in op:
                links[op["operationId"]] = {"operationId": op["operationId"], "parameters": dict(parameters)}
    return schema


def install(app: FastAPI) -> None:
    """Serve the completed document from `app.openapi()` (wrapping whatever builds it now)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        return link(secure(complete(build()), app.router.routes))

    app.openapi = openapi  # type: ignore[method-assign]
