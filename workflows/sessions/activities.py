"""Session activities: record expiry or revocation on the MCPAgentSession."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio import activity

from mcp_sentinel.kube.errors import NotFound
from mcp_sentinel.kube.objects import Cluster, Ref
from mcp_sentinel.kube.resources import API_VERSION as SENTINEL_VERSION


@dataclass
class MarkSession:
    """Set the session's phase (`Expired` or `Revoked`) at `at` (RFC 3339)."""

    namespace: str
    name: str
    phase: str
    at: str
    expires_at: str = ""


@dataclass
class SessionServer:
    """The server a session belongs to; `found` is False when the session no longer exists."""

    found: bool
    namespace: str = ""
    server: str = ""
    extended_to: str = ""


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
        spec_expiry = str(spec.get("expiresAt") or "")
        if req.phase == "Expired" and spec_expiry and req.expires_at and _later(spec_expiry, req.expires_at):
            # Extended out of band (kubectl edit, no signal): the CR is the source of truth, keep waiting.
            found.extended_to = spec_expiry
            return found
        try:
            if req.phase == "Revoked" and not spec.get("revoked"):
                self.cluster.merge_patch(ref, {"spec": {"revoked": True}})
            # Fields of the CRD's status schema only (unknown ones would be pruned).
            reason = "ExpiresAtReached" if req.phase == "Expired" else "Revoked"
            message = f"session {req.phase.lower()} at {req.at}"
            condition = {
                "type": req.phase,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": req.at,
            }
            status = {"phase": req.phase, "message": message, "conditions": [condition]}
            self.cluster.merge_patch(ref, {"status": status}, status=True)
        except NotFound:
            return SessionServer(False, found.namespace, found.server)
        return found


def _later(a: str, b: str) -> bool:
    try:
        return datetime.fromisoformat(a.replace("Z", "+00:00")) > datetime.fromisoformat(b.replace("Z", "+00:00"))
    except ValueError:
        return False  # an unparseable spec expiry counts as expired (as the evaluator does)
