"""`Cluster` over the official `kubernetes` client (in-cluster config or KUBECONFIG).

The client's generated per-kind methods are replaced by one REST path builder so a single
code path covers core kinds and our CRDs alike; authentication, TLS and kubeconfig handling
still come from the official `ApiClient`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from workflows.cluster import AlreadyExists, ClusterError, Invalid, NotFound, Obj, Ref

# kind -> (plural, namespaced). Only the kinds the workflows touch.
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ConfigMap": ("configmaps", True),
    "ResourceQuota": ("resourcequotas", True),
    "LimitRange": ("limitranges", True),
    "NetworkPolicy": ("networkpolicies", True),
    "RoleBinding": ("rolebindings", True),
    "Deployment": ("deployments", True),
    "MCPServer": ("mcpservers", True),
    "MCPAccessGrant": ("mcpaccessgrants", True),
    "MCPAgentSession": ("mcpagentsessions", True),
}


def resource_path(api_version: str, kind: str, namespace: str | None, name: str = "") -> str:
    """The REST path of a kind (collection when `name` is empty; all namespaces when `namespace` is None)."""
    try:
        plural, namespaced = KINDS[kind]
    except KeyError:
        raise ClusterError(f"unsupported kind {kind!r}") from None
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = base
    if namespaced and namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name:
        path += f"/{name}"
    return path


class KubeCluster:
    """Talks to a Kubernetes API server with the official client; created lazily on first use."""

    def __init__(self, kubeconfig: str = "", request_timeout: float = 10.0) -> None:
        self._kubeconfig = kubeconfig
        self._timeout = request_timeout
        self._client: Any = None
        self._lock = threading.Lock()

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                from kubernetes import client, config

                try:
                    if self._kubeconfig:
                        cfg = client.Configuration()
                        config.load_kube_config(config_file=self._kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
                    else:
                        cfg = client.Configuration()
                        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
                except Exception as exc:  # the loaders raise several unrelated types
                    raise ClusterError(f"kubernetes not configured: {exc}") from exc
                self._client = client.ApiClient(cfg)
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
            status, raw = int(exc.status or 0), (exc.body or b"")
        except Exception as exc:  # urllib3 connection errors and friends: retryable
            raise ClusterError(f"{method} {path}: {exc}") from exc
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if 200 <= status < 300:
            return json.loads(text) if text.strip() else {}
        message = f"{method} {path}: HTTP {status} {text[:300]}"
        if status == 404:
            raise NotFound(message)
        if status == 409:
            raise AlreadyExists(message)
        if status in (400, 422):
            raise Invalid(message, status)
        raise ClusterError(message, status)

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

    def delete(self, ref: Ref) -> bool:
        """Delete the object; False when it was already gone."""
        try:
            self._call("DELETE", resource_path(ref.api_version, ref.kind, ref.namespace, ref.name))
        except NotFound:
            return False
        return True

    def merge_patch(self, ref: Ref, patch: Obj, *, status: bool = False) -> Obj:
        """JSON merge patch (the status subresource when `status`); raises NotFound."""
        path = resource_path(ref.api_version, ref.kind, ref.namespace, ref.name) + ("/status" if status else "")
        return self._call("PATCH", path, patch, content_type="application/merge-patch+json")

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        """Objects of a kind in one namespace, or in all namespaces when `namespace` is None."""
        out = self._call("GET", resource_path(api_version, kind, namespace))
        items = out.get("items") or []
        for item in items:
            # List items omit apiVersion/kind; put them back so Ref.of works on them.
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return list(items)
