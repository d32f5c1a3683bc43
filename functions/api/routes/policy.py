"""`GET /api/runtime/policy?namespace=&server=`: the rendered document a server's sidecar enforces."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from functions.api.deps import AnyPrincipal, Kube, kcall
from functions.api.errors import ApiError, bad_request, forbidden, not_found
from functions.api.models import NamespaceQuery, ServerQuery
from functions.api.services.scope import administers, check_name
from mcp_sentinel.kube.resources import policy_configmap_name
from mcp_sentinel.policy_delivery import read_policy_configmap

router = APIRouter(prefix="/api/runtime", tags=["governance"])


@router.get("/policy")
async def rendered_policy(
    kube: Kube, p: AnyPrincipal, namespace: NamespaceQuery, server: ServerQuery
) -> dict[str, Any]:
    """Every key of the document, plus `json` (the ConfigMap text) and `source` (server administrators)."""
    if not namespace or not server:
        raise bad_request("namespace and server are required", "invalid_query_param")
    check_name("namespace", namespace, label=True)
    check_name("server", server)
    try:
        server_obj = await kcall(kube.servers.get, namespace, server)
    except ApiError as exc:
        if exc.status != 404:
            raise
        if p.is_admin:
            raise not_found("policy not found") from None
        raise forbidden("forbidden server") from None
    if not administers(p, namespace, server_obj):
        raise forbidden("forbidden server")
    text = await kcall(read_policy_configmap, kube.objects, namespace, server)
    if text is None:
        raise not_found("policy not found")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = {}
    out: dict[str, Any] = dict(doc) if isinstance(doc, dict) else {}
    out["json"] = text
    out["source"] = f"configmap/{namespace}/{policy_configmap_name(server)}"
    return out
