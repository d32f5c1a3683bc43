"""Restart activities over a pluggable backend (`RESTART_BACKEND=kubernetes|local`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mcp_sentinel.kube.errors import NotFound
from mcp_sentinel.kube.objects import Cluster, Ref

RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
PART_OF_LABEL = "app.kubernetes.io/part-of"


@dataclass
class RolloutStatus:
    """Where one restart stands: `ready`, `failed` (terminal) or neither (still rolling)."""

    ready: bool
    failed: bool = False
    detail: str = ""


@dataclass
class Trigger:
    """Restart `component`; `token` identifies this restart (idempotency key, restartedAt value)."""

    component: str
    token: str


@dataclass
class WaitReady:
    """Poll until the restart identified by `token` is ready or `deadline` (ISO 8601, UTC) passes."""

    component: str
    token: str
    deadline: str
    poll_seconds: float = 2.0


@dataclass
class ComponentOutcome:
    """The per-component line of a restart report."""

    component: str
    ok: bool
    detail: str


class RestartBackend(Protocol):
    """How components are restarted and observed in one environment."""

    def components(self) -> list[str]:
        """Every restartable component."""

    def trigger(self, component: str, token: str) -> None:
        """Start the restart (idempotent per token); raises KeyError for an unknown component."""

    def status(self, component: str, token: str) -> RolloutStatus:
        """Progress of the restart identified by token."""


class KubernetesRestarts:
    """Deployments labelled `app.kubernetes.io/part-of=<part_of>` in one namespace, restarted like kubectl."""

    def __init__(self, cluster: Cluster, namespace: str, part_of: str = "mcp-sentinel") -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.part_of = part_of

    def _ref(self, component: str) -> Ref:
        return Ref("apps/v1", "Deployment", self.namespace, component)

    def components(self) -> list[str]:
        """Deployments of the platform in the namespace."""
        items = self.cluster.list("apps/v1", "Deployment", self.namespace)
        return sorted(
            d["metadata"]["name"]
            for d in items
            if (d["metadata"].get("labels") or {}).get(PART_OF_LABEL) == self.part_of
        )

    def trigger(self, component: str, token: str) -> None:
        """Patch the pod template annotation, which makes the Deployment roll."""
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: token}}}}}
        try:
            self.cluster.merge_patch(self._ref(component), patch)
        except NotFound:
            raise KeyError(component) from None

    def status(self, component: str, token: str) -> RolloutStatus:
        """`kubectl rollout status` semantics: new generation observed, all replicas updated and available."""
        dep = self.cluster.get(self._ref(component))
        if dep is None:
            return RolloutStatus(False, True, "deployment disappeared")
        annotations = ((dep.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
        if annotations.get(RESTART_ANNOTATION) != token:
            return RolloutStatus(False, True, "superseded by another restart")
        want = int((dep.get("spec") or {}).get("replicas", 1))
        st = dep.get("status") or {}
        generation = int(dep["metadata"].get("generation", 0))
        if int(st.get("observedGeneration", 0)) < generation:
            return RolloutStatus(False, False, "waiting for the controller to observe the new generation")
        updated, available = int(st.get("updatedReplicas", 0)), int(st.get("availableReplicas", 0))
        if updated < want or available < want or int(st.get("replicas", 0)) > want:
            return RolloutStatus(False, False, f"{updated}/{want} updated, {available}/{want} available")
        return RolloutStatus(True, False, f"{want}/{want} replicas updated and available")


class RestartActivities:
    """Activities for RestartComponent."""

    def __init__(self, backend: RestartBackend) -> None:
        self.backend = backend

    @activity.defn(name="restarts.list_components")
    def list_components(self) -> list[str]:
        """Every restartable component (for `all`)."""
        return self.backend.components()

    @activity.defn(name="restarts.trigger")
    def trigger(self, req: Trigger) -> None:
        """Start one restart."""
        try:
            self.backend.trigger(req.component, req.token)
        except KeyError:
            raise ApplicationError(
                f"unknown component {req.component!r}", type="UnknownComponent", non_retryable=True
            ) from None

    @activity.defn(name="restarts.wait_ready")
    def wait_ready(self, req: WaitReady) -> ComponentOutcome:
        """Poll with heartbeats so a dead worker's wait is picked up by another within seconds."""
        deadline = datetime.fromisoformat(req.deadline).timestamp()
        last = RolloutStatus(False, False, "not checked")
        while True:
            last = self.backend.status(req.component, req.token)
            activity.heartbeat(last.detail)
            if last.ready:
                return ComponentOutcome(req.component, True, last.detail)
            if last.failed:
                return ComponentOutcome(req.component, False, last.detail)
            if time.time() >= deadline:
                return ComponentOutcome(req.component, False, f"not ready by the deadline: {last.detail}")
            time.sleep(max(0.05, min(req.poll_seconds, deadline - time.time())))
