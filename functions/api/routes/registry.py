"""`/api/registry/authz` (registry forward-auth) and `/api/user/activity/image-publish`."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from functions.api.auth import audit_entry, authenticate
from functions.api.context import ctx_of
from functions.api.deps import AnyPrincipal, Store
from functions.api.errors import bad_request, error_response
from functions.api.models import NO_NUL, NON_BLANK, Body
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal

router = APIRouter(tags=["registry"])
REALM = 'Basic realm="mcp-sentinel-registry"'
READ_METHODS = frozenset({"GET", "HEAD"})
# /v2/<repository>/(manifests|blobs|tags)/...; repository may contain slashes.
_REPO_RE = re.compile(r"^/v2/(?P<repo>[a-z0-9._/-]+?)/(manifests|blobs|tags)(/|$)")


def repository_namespace(uri: str) -> str | None:
    """The first path component of the repository a registry URI addresses (None if none)."""
    path = uri.split("?", 1)[0]
    m = _REPO_RE.match(path)
    if not m:
        return None
    return m.group("repo").split("/", 1)[0]


def may_access(principal: Principal, method: str, namespace: str) -> bool:
    """Pull from namespaces the caller may see; push only into its own team namespaces."""
    if principal.is_admin:
        return True
    if method.upper() in READ_METHODS:
        return namespace in principal.allowed_namespaces
    own = {t.namespace for t in principal.teams if t.namespace}
    return namespace in own and namespace != SHARED_NAMESPACE


async def _basic_principal(request: Request) -> Principal | None:
    ctx = ctx_of(request)
    header = request.headers.get("authorization", "")
    if header[:6].lower() != "basic ":
        return await authenticate(request)
    try:
        username, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if ctx.store is None:
        return None
    found = await ctx.store.resolve_key("registry_credentials", password)
    if found is None:
        return None
    user, key_id = found
    if user.disabled or username.strip().lower() not in (user.email, user.id):
        return None
    return await ctx.store.load_principal(user, auth_type="registry_credential", api_key_id=key_id)


async def registry_authz(request: Request) -> Response:
    """Forward-auth for the image registry: 204 allow, 401 challenge, 403 out of scope."""
    principal = await _basic_principal(request)
    if principal is None:
        return error_response(401, "unauthorized", "registry credentials required", {"WWW-Authenticate": REALM})
    uri = request.headers.get("x-forwarded-uri", "/v2/")
    method = request.headers.get("x-forwarded-method", "GET")
    if uri.split("?", 1)[0].rstrip("/") == "/v2":
        return Response(status_code=204)
    namespace = repository_namespace(uri)
    if namespace is None or not may_access(principal, method, namespace):
        return JSONResponse(
            {"error": "forbidden", "message": f"repository out of scope for {method.upper()}"}, status_code=403
        )
    return Response(status_code=204)


for _method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
    router.add_api_route(
        "/api/registry/authz",
        registry_authz,
        methods=[_method],
        status_code=204,
        operation_id=f"registry_authz_{_method.lower()}",
        include_in_schema=_method != "HEAD",  # HEAD is GET without a body (RFC 9110): implied, not listed
    )


class ImagePublish(Body):
    """A client reporting that it pushed an image."""

    image_ref: str = Field(min_length=1, max_length=512, pattern=NON_BLANK)
    source_image: str | None = Field(default=None, max_length=512, pattern=NO_NUL)
    mode: str | None = Field(default=None, max_length=64, pattern=NO_NUL)


@router.post("/api/user/activity/image-publish", status_code=202)
async def image_publish(
    request: Request, body: ImagePublish, store: Store, principal: AnyPrincipal
) -> dict[str, Any]:
    """Record an image publish in the platform audit log."""
    ref = body.image_ref
    if not ref:
        raise bad_request("image_ref is required")
    details = ", ".join(f"{k}={v}" for k, v in (("source_image", body.source_image), ("mode", body.mode)) if v)
    await store.audit(
        audit_entry(
            request,
            principal,
            action="image_publish",
            resource="image",
            status="success",
            message=details or None,
            image_ref=ref,
        )
    )
    return {"ok": True, "image_ref": ref}
