"""What the workflow activities need from Kubernetes, as a small Protocol.

Activities depend on `Cluster`, never on the `kubernetes` package directly, so the workflow
modules stay sandbox-light and tests can run the same activities against any real
implementation. `workflows.kube.KubeCluster` is the production one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]

SENTINEL_GROUP = "mcpruntime.org"
SENTINEL_VERSION = f"{SENTINEL_GROUP}/v1alpha1"


class ClusterError(RuntimeError):
    """A Kubernetes call failed; `status` is the HTTP status when there was one (0 otherwise)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ClusterError):
    """The object does not exist (HTTP 404)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 404)


class AlreadyExists(ClusterError):
    """An object with that name already exists (HTTP 409 on create)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 409)


class Invalid(ClusterError):
    """The API server rejected the object (HTTP 400/422); retrying cannot help."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message, status)


@dataclass(frozen=True)
class Ref:
    """Identifies one object: `api_version` like `v1` or `apps/v1`, `kind`, namespace ('' if cluster-scoped), name."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Obj) -> Ref:
        """The reference of a manifest."""
        meta = obj.get("metadata") or {}
        return cls(str(obj["apiVersion"]), str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class Cluster(Protocol):
    """The Kubernetes verbs the workflows use (all synchronous; activities run in a thread pool)."""

    def get(self, ref: Ref) -> Obj | None:
        """The object, or None when it does not exist."""

    def create(self, obj: Obj) -> Obj:
        """Create the object; raises AlreadyExists when the name is taken."""

    def delete(self, ref: Ref) -> bool:
        """Delete the object; False when it was already gone."""

    def merge_patch(self, ref: Ref, patch: Obj, *, status: bool = False) -> Obj:
        """JSON merge patch (the status subresource when `status`); raises NotFound."""

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        """Objects of a kind in one namespace, or in all namespaces when `namespace` is None."""


def ensure(cluster: Cluster, obj: Obj) -> bool:
    """Create-or-get: True when this call created the object, False when it already existed."""
    try:
        cluster.create(obj)
    except AlreadyExists:
        return False
    return True
