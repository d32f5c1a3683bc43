"""Render a server's policy from the CRDs and deliver it (`mcp_sentinel.policy_delivery`).

Shared by PolicyReconcile (every server, on a schedule) and SessionExpiry (one server, when a
session expires or is revoked). The delivery itself is the one the API and ServerLifecycle use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity

from mcp_sentinel.kube.objects import Cluster
from mcp_sentinel.kube.resources import API_VERSION
from mcp_sentinel.policy_delivery import deliver_policy

log = logging.getLogger(__name__)


@dataclass
class RenderRequest:
    """Which server to re-render and why (`trigger` labels the metric and log line)."""

    namespace: str
    server: str
    trigger: str = "reconcile"


@dataclass
class RenderOutcome:
    """`changed` when the delivered policy differed from what was there (drift or a real change)."""

    namespace: str
    server: str
    changed: bool = False
    error: str = ""


@dataclass
class ServerRef:
    """One MCPServer."""

    namespace: str
    name: str


class PolicyActivities:
    """Render-and-deliver activities bound to a cluster and an optional local output folder."""

    def __init__(self, cluster: Cluster, *, output_dir: Path | None = None, cluster_name: str = "local") -> None:
        self.cluster = cluster
        self.output_dir = output_dir
        self.cluster_name = cluster_name

    @activity.defn(name="policy.list_servers")
    def list_servers(self) -> list[ServerRef]:
        """Every MCPServer in the cluster."""
        items = self.cluster.list(API_VERSION, "MCPServer", None)
        return sorted(
            (ServerRef(str(s["metadata"].get("namespace", "")), str(s["metadata"]["name"])) for s in items),
            key=lambda r: (r.namespace, r.name),
        )

    @activity.defn(name="policy.render_server")
    def render_server(self, req: RenderRequest) -> RenderOutcome:
        """Render from the CRDs; write the ConfigMap and the local file only when they differ."""
        out = RenderOutcome(req.namespace, req.server)
        try:
            sync = deliver_policy(
                self.cluster, req.namespace, req.server, output_dir=self.output_dir, cluster_name=self.cluster_name
            )
        except ValueError as exc:
            # An invalid render keeps the last good policy in place (upstream §2.1).
            out.error = f"invalid policy render: {exc}"
            return out
        if not sync.found:
            out.error = f"MCPServer {req.namespace}/{req.server} not found"
            return out
        out.changed = sync.changed or sync.removed
        if out.changed:
            log.info("policy %s/%s re-rendered (trigger=%s)", req.namespace, req.server, req.trigger)
            _count("sentinel_policy_rerenders", "Policies whose delivered text changed when re-rendered", req)
        return out

    @activity.defn(name="policy.report_drift")
    def report_drift(self, drifted: list[ServerRef]) -> None:
        """Log and count drift found by a reconcile pass."""
        for ref in drifted:
            log.warning("policy drift repaired for %s/%s", ref.namespace, ref.name)
            _count(
                "sentinel_policy_drift",
                "Servers whose policy drifted from the CRDs",
                RenderRequest(ref.namespace, ref.name),
            )
        if not drifted:
            log.info("policy reconcile: no drift")


def _count(name: str, description: str, req: RenderRequest) -> None:
    try:
        meter = activity.metric_meter()
    except RuntimeError:
        return  # called outside an activity (unit use)
    meter.create_counter(name, description).add(1, {"namespace": req.namespace, "server": req.server})
