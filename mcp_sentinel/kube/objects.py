"""Any-kind object verbs (get/create/replace/merge-patch/delete/list) over the official client.

The typed helpers in `resources.py` cover our CRDs; workflow activities and policy delivery also
touch core and apps kinds (ConfigMap, Deployment, Service, Ingress, ...). Rather than one
generated method per kind, one REST path builder covers them all, while authentication, TLS and
kubeconfig handling still come from the official `ApiClient` (`client.load_kube`). Failures are
the one error tree of `mcp_sentinel.kube.errors`.

`Cluster` is the Protocol activities depend on, so tests and callers can pass any implementation.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mcp_sentinel.kube.errors import AlreadyExists, KubeError, NotFound, Unavailable, from_api_exception

if TYPE_CHECKING:
    from kubernetes import client as k8s

Obj = dict[str, Any]

# kind -> (plural, namespaced). Only the kinds the product touches (RBAC in knative/rbac follows).
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ConfigMap": ("configmaps", True),
    "Service": ("services", True),
    "ResourceQuota": ("resourcequotas", True),
    "LimitRange": ("limitranges", True),
    "NetworkPolicy": ("networkpolicies", True),
    "Ingress": ("ingresses", True),
    "RoleBinding": ("rolebindings", True),
    "Deployment": ("deployments", True),
    "MCPServer": ("mcpservers", True),
    "MCPAccessGrant": ("mcpaccessgrants", True),
    "MCPAgentSession": ("mcpagentsessions", True),
}


@dataclass(frozen=True)
class Ref:
    """Identifies one object: `api_version` like `v1` or `apps/v1`, `kind`, namespace ('' if cluster-scoped), name."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Ref:
        """The reference of a manifest."""
        meta = obj.get("metadata") or {}
        return cls(str(obj["apiVersion"]), str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class Cluster(Protocol):
    """The Kubernetes verbs activities use (synchronous; activities run in a thread pool)."""

    def get(self, ref: Ref) -> Obj | None:
        """The object, or None when it does not exist."""

    def create(self, obj: Obj) -> Obj:
        """Create the object; raises AlreadyExists when the name is taken."""

    def replace(self, obj: Obj) -> Obj:
        """PUT the object (its metadata.resourceVersion guards against lost updates: Conflict when stale)."""

    def delete(self, ref: Ref) -> bool:
        """Delete the object (background propagation); False when it was already gone."""

    def merge_patch(self, ref: Ref, patch: Obj, *, status: bool = False) -> Obj:
        """JSON merge patch (the status subresource when `status`); raises NotFound."""

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, *, label_selector: str = ""
    ) -> list[Obj]:
        """Objects of a kind in one namespace, or in all namespaces when `namespace` is None."""


def ensure(cluster: Cluster, obj: Obj) -> bool:
    """Create-or-get: True when this call created the object, False when it already existed."""
    try:
        cluster.create(obj)
    except AlreadyExists:
        return False
    return True


def resource_path(api_version: str, kind: str, namespace: str | None, name: str = "") -> str:
    """The REST path of a kind (collection when `name` is empty; all namespaces when `namespace` is None)."""
    try:
        plural, namespaced = KINDS[kind]
    except KeyError:
        raise KubeError(f"unsupported kind {kind!r}") from None
    path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name:
        path += f"/{name}"
    return path


class KubeCluster:
    """`Cluster` over one official `ApiClient`: given, or loaded lazily from `kubeconfig`
    (in-cluster service account when empty and running in a pod)."""

    def __init__(
        self, kubeconfig: str = "", request_timeout: float = 10.0, *, api: k8s.ApiClient | None = None
    ) -> None:
        self._kubeconfig = kubeconfig
        self._timeout = request_timeout
        self._client: Any = api
        self._lock = threading.Lock()

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                from mcp_sentinel.kube.client import load_kube

                environ = {"KUBECONFIG": self._kubeconfig} if self._kubeconfig else dict(os.environ)
                try:
                    self._client = load_kube(environ)
                except KubeError:
                    raise
                except Exception as exc:  # the loaders raise several unrelated types
                    raise Unavailable(f"kubernetes not configured: {exc}") from exc
            return self._client

    def _call(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> Obj:
        from kubernetes.client.exceptions import ApiException

        api = self._api()
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            m, url, hdrs, data, post = api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            resp = api.call_api(m, url, hdrs, data, post, _request_timeout=self._timeout)
            status = int(resp.status)
            raw = resp.read()
        except ApiException as exc:
            raise from_api_exception(exc) from exc
        except Exception as exc:  # urllib3 connection errors and friends: retryable
            raise Unavailable(f"{method} {path}: {exc}") from exc
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if 200 <= status < 300:
            return json.loads(text) if text.strip() else {}
        # call_api does not raise on every status; map it exactly as ApiException would be.
        fake = ApiException(status=status, reason=f"{method} {path}")
        fake.body = text
        raise from_api_exception(fake)

    def get(self, ref: Ref) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self._call("GET", resource_path(ref.api_version, ref.kind, ref.namespace, ref.name))
        except NotFound:
            return None

    def create(self, obj: Obj) -> Obj:
        """Create the object; raises AlreadyExists when the name is taken."""
        ref = Ref.of(obj)
        return self._call("POST", resource_path(ref.api_version, ref.kind, ref.namespace), obj)

    def replace(self, obj: Obj) -> Obj:
        """PUT the object; Conflict when its resourceVersion is stale, NotFound when it is gone."""
        ref = Ref.of(obj)
        return self._call("PUT", resource_path(ref.api_version, ref.kind, ref.namespace, ref.name), obj)

    def delete(self, ref: Ref) -> bool:
        """Delete the object (owned objects follow in the background); False when it was already gone."""
        try:
            self._call(
                "DELETE",
                resource_path(ref.api_version, ref.kind, ref.namespace, ref.name),
                {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            )
        except NotFound:
            return False
        return True

    def merge_patch(self, ref: Ref, patch: Obj, *, status: bool = False) -> Obj:
        """JSON merge patch (the status subresource when `status`); raises NotFound."""
        path = resource_path(ref.api_version, ref.kind, ref.namespace, ref.name) + ("/status" if status else "")
        return self._call("PATCH", path, patch, content_type="application/merge-patch+json")

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, *, label_selector: str = ""
    ) -> list[Obj]:
        """Objects of a kind in one namespace, or in all namespaces when `namespace` is None."""
        query = {"labelSelector": label_selector} if label_selector else None
        out = self._call("GET", resource_path(api_version, kind, namespace), query=query)
        items = out.get("items") or []
        for item in items:
            # List items omit apiVersion/kind; put them back so Ref.of works on them.
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return list(items)
