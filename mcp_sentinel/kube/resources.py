"""Typed helpers over the official client for the objects the API function and workflows own.

Objects travel as plain dicts in the Kubernetes JSON shape (camelCase keys), the same shape
manifests and the REST API use. Failures surface as `mcp_sentinel.kube.errors` exceptions.

The `kubernetes` package (about 150 ms of imports: it loads its config, dynamic and stream
clients eagerly) is imported when a client object is built, not with this module: the API names
these types in its routes but only talks to Kubernetes once a route needing it is called.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from mcp_sentinel.kube.errors import AlreadyExists, NotFound, translate
from mcp_sentinel.kube.objects import KubeCluster

GROUP = "mcpruntime.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY = "mcp-sentinel"
POLICY_KEY = "policy.json"
JSON_PATCH = "application/json-patch+json"

if TYPE_CHECKING:
    from kubernetes import client as k8s

Obj = dict[str, Any]
JsonPatch = list[dict[str, Any]]  # RFC 6902 operations


@dataclass(frozen=True)
class CustomKind:
    """One of our CRDs: REST plural and kind."""

    plural: str
    kind: str


MCP_SERVER = CustomKind("mcpservers", "MCPServer")
MCP_ACCESS_GRANT = CustomKind("mcpaccessgrants", "MCPAccessGrant")
MCP_AGENT_SESSION = CustomKind("mcpagentsessions", "MCPAgentSession")


def policy_configmap_name(server: str) -> str:
    """`<server>-gateway-policy`, the ConfigMap a server's sidecar mounts (upstream §2.1)."""
    return f"{server}-gateway-policy"


class CustomResources:
    """list/get/create/replace/patch/delete (and status patch) for one custom kind."""

    def __init__(self, api: k8s.ApiClient, kind: CustomKind) -> None:
        from kubernetes import client as k8s  # deferred: see module docstring

        self.kind = kind
        # The custom-objects API takes and returns plain dicts; typed as Any for that reason.
        self._co: Any = k8s.CustomObjectsApi(api)

    def _args(self, namespace: str) -> tuple[str, str, str, str]:
        return (GROUP, VERSION, namespace, self.kind.plural)

    def list(self, namespace: str | None = None, *, label_selector: str = "") -> list[Obj]:
        """Objects in `namespace` (every namespace when None), optionally label-filtered."""
        kwargs = {"label_selector": label_selector} if label_selector else {}
        if namespace is None:
            out = translate(partial(self._co.list_cluster_custom_object, GROUP, VERSION, self.kind.plural, **kwargs))
        else:
            out = translate(partial(self._co.list_namespaced_custom_object, *self._args(namespace), **kwargs))
        return list(out.get("items") or [])

    def get(self, namespace: str, name: str) -> Obj:
        """One object; NotFound when absent."""
        return dict(translate(partial(self._co.get_namespaced_custom_object, *self._args(namespace), name)))

    def create(self, namespace: str, body: Mapping[str, Any]) -> Obj:
        """Create; AlreadyExists when the name is taken, Invalid when the schema rejects it."""
        obj = self._complete(namespace, body)
        return dict(translate(partial(self._co.create_namespaced_custom_object, *self._args(namespace), obj)))

    def replace(self, namespace: str, name: str, body: Mapping[str, Any]) -> Obj:
        """PUT; the body must carry the resourceVersion it was read at (Conflict when stale)."""
        obj = self._complete(namespace, body)
        obj["metadata"].setdefault("name", name)
        return dict(translate(partial(self._co.replace_namespaced_custom_object, *self._args(namespace), name, obj)))

    def patch(self, namespace: str, name: str, patch: Mapping[str, Any] | JsonPatch) -> Obj:
        """A JSON merge patch (a dict) or a JSON patch (a list of operations)."""
        extra = {"_content_type": JSON_PATCH} if isinstance(patch, list) else {}
        body = list(patch) if isinstance(patch, list) else dict(patch)
        call = partial(self._co.patch_namespaced_custom_object, *self._args(namespace), name, body, **extra)
        return dict(translate(call))

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Obj:
        """Merge `status` into the status subresource (spec changes there are ignored)."""
        call = partial(
            self._co.patch_namespaced_custom_object_status, *self._args(namespace), name, {"status": dict(status)}
        )
        return dict(translate(call))

    def delete(self, namespace: str, name: str) -> None:
        """Delete (background propagation: owned objects such as the policy ConfigMap follow)."""
        translate(
            partial(
                self._co.delete_namespaced_custom_object,
                *self._args(namespace),
                name,
                propagation_policy="Background",
            )
        )

    def _complete(self, namespace: str, body: Mapping[str, Any]) -> Obj:
        obj = copy.deepcopy(dict(body))
        obj.setdefault("apiVersion", API_VERSION)
        obj.setdefault("kind", self.kind.kind)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        return obj


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    """A controller owner reference to an MCPServer object (as returned by `servers.get`)."""
    meta = owner.get("metadata") or {}
    if not meta.get("uid") or not meta.get("name"):
        raise ValueError("owner must be a stored object with metadata.name and metadata.uid")
    return {
        "apiVersion": str(owner.get("apiVersion") or API_VERSION),
        "kind": str(owner.get("kind") or MCP_SERVER.kind),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class SentinelKube:
    """Everything mcp-sentinel reads and writes in Kubernetes, over one ApiClient."""

    def __init__(self, api: k8s.ApiClient) -> None:
        from kubernetes import client as k8s  # deferred: see module docstring

        self.api = api
        self.servers = CustomResources(api, MCP_SERVER)
        self.grants = CustomResources(api, MCP_ACCESS_GRANT)
        self.sessions = CustomResources(api, MCP_AGENT_SESSION)
        self._core: Any = k8s.CoreV1Api(api)
        # Any-kind verbs over the same ApiClient (policy delivery, lifecycle hooks).
        self.objects = KubeCluster(api=api)

    def _plain(self, model: Any) -> Obj:
        out = self.api.sanitize_for_serialization(model)  # type: ignore[no-untyped-call]
        return dict(out) if isinstance(out, dict) else {}

    def ensure_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> Obj:
        """Create the namespace if missing (labels applied on creation); returns it."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}
        try:
            return self._plain(translate(partial(self._core.create_namespace, body)))
        except AlreadyExists:
            return self._plain(translate(partial(self._core.read_namespace, name)))

    def namespace_team(self, name: str) -> str | None:
        """The platform's team of a namespace (its `mcp-sentinel.io/team-id` label); None when unlabelled or absent."""
        from mcp_sentinel.gateway_credentials import team_of_namespace

        try:
            ns = self._plain(translate(partial(self._core.read_namespace, name)))
        except NotFound:
            return None
        return team_of_namespace(ns) or None

