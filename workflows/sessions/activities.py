"""Session activities: record expiry or revocation on the MCPAgentSession."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from workflows.cluster import SENTINEL_VERSION, Cluster, NotFound, Ref


@dataclass
class MarkSession:
    """Set the session's phase (`Expired` or `Revoked`) at `at` (RFC 3339)."""

    namespace: str
    name: str
    phase: str
    at: str


@dataclass
class SessionServer:
    """The server a session belongs to; `found` is False when the session no longer exists."""

    found: bool
    namespace: str = ""
    server: str = ""


class SessionActivities:
    """Activities for SessionExpiry, bound to a cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @activity.defn(name="sessions.mark")
    def mark(self, req: MarkSession) -> SessionServer:
        """Patch status (and `spec.revoked` for revocations); idempotent."""
        ref = Ref(SENTINEL_VERSION, "MCPAgentSession", req.namespace, req.name)
        current = self.cluster.get(ref)
        if current is None:
            return SessionServer(False)
        spec = current.get("spec") or {}
        server_ref = spec.get("serverRef") or {}
        found = SessionServer(True, str(server_ref.get("namespace") or req.namespace), str(server_ref.get("name", "")))
        try:
            if req.phase == "Revoked" and not spec.get("revoked"):
                self.cluster.merge_patch(ref, {"spec": {"revoked": True}})
            stamp = "expiredAt" if req.phase == "Expired" else "revokedAt"
            self.cluster.merge_patch(ref, {"status": {"phase": req.phase, stamp: req.at}}, status=True)
        except NotFound:
            return SessionServer(False, found.namespace, found.server)
        return found
