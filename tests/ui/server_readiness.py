"""How the UI tests get a published server to Ready: the ONE place to swap once the reconciler runs.

STAND-IN (issue 15): the local reconciler that writes an MCPServer's status (`observedGeneration`,
`url`, `policyRevision`, conditions `Ready`, `GatewayReady`, `PolicyDelivered`) is being built on
another branch and does not run in the `governed_backend` stack. Until it does, `become_ready`
writes the status that reconciler would, through the local Kubernetes API server's status
subresource (the same write path a controller uses), in two steps so the page is seen to follow
(not ready, then Ready).

At merge: start the reconciler in `tests/ui/conftest.py::governed_backend` and replace the body
of `become_ready` with the wait alone (`expect(badge).to_have_text("Ready", timeout=...)`); the
browser test calls nothing else from here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from localstack.config import StackConfig
from mcp_sentinel.kube.client import load_kube
from mcp_sentinel.kube.resources import SentinelKube

STANDIN = True  # the page is checked at "status pending" first only while the test writes the status


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message,
            "lastTransitionTime": now}


def write_status(cfg: StackConfig, namespace: str, name: str, *, ready: bool) -> dict[str, Any]:
    """The status a reconciler writes: gateway up, then the policy delivered (STAND-IN)."""
    api = load_kube({"KUBECONFIG": str(cfg.kubeconfig)})
    try:
        kube = SentinelKube(api)
        obj = kube.servers.get(namespace, name)
        generation = int((obj.get("metadata") or {}).get("generation") or 1)
        status = {
            "observedGeneration": generation,
            "url": cfg.url("front_door", f"/{name}/mcp"),
            "policyRevision": "standin-1" if ready else "",
            "conditions": [
                _condition("Ready", ready, "Reconciled" if ready else "PolicyPending",
                           "serving through the gateway" if ready else "waiting for the gateway to load the policy"),
                _condition("GatewayReady", True, "GatewayRunning", "the gateway answers its health check"),
                _condition("PolicyDelivered", ready, "PolicyLoaded" if ready else "PolicyPending",
                           "policy revision standin-1 loaded" if ready else "not loaded yet"),
            ],
        }
        return kube.servers.patch_status(namespace, name, status)
    finally:
        api.close()  # type: ignore[no-untyped-call]


def become_ready(cfg: StackConfig, page: Any, namespace: str, name: str, timeout_ms: float = 60000) -> dict[str, Any]:
    """Bring the server to Ready and watch the open servers page follow, without reloading it.

    Returns the server's status as stored (the CRD's schema prunes fields it does not declare).
    """
    from playwright.sync_api import expect

    badge = page.get_by_test_id(f"ready-{name}")
    write_status(cfg, namespace, name, ready=False)  # STAND-IN: the reconciler's first pass
    expect(badge).to_have_text("Not ready: PolicyPending", timeout=timeout_ms)
    stored = write_status(cfg, namespace, name, ready=True)  # STAND-IN: the policy reached the gateway
    expect(badge).to_have_text("Ready", timeout=timeout_ms)
    status: dict[str, Any] = stored.get("status") or {}
    return status
