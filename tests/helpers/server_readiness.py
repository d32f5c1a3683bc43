"""How the UI tests get a published server to Ready: the local reconciler (`localstack/reconciler`),
which `tests/ui/conftest.py::governed_backend` runs, turns a server published by URL into a sidecar
and a front-door route and writes its status (`observedGeneration`, `url`, `policyRevision`,
conditions `Ready`, `GatewayReady`, `PolicyDelivered`); the page is watched to follow it.
"""

from __future__ import annotations

from typing import Any

from localstack.config import StackConfig
from mcp_sentinel.kube.client import load_kube
from mcp_sentinel.kube.resources import SentinelKube

STANDIN = False  # the status comes from the real reconciler (it was written by the test before it existed)


def become_ready(cfg: StackConfig, page: Any, namespace: str, name: str, timeout_ms: float = 60000) -> dict[str, Any]:
    """Wait for the open servers page to show the server Ready, without reloading it; its stored status."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id(f"ready-{name}")).to_have_text("Ready", timeout=timeout_ms)
    api = load_kube({"KUBECONFIG": str(cfg.kubeconfig)})
    try:
        status: dict[str, Any] = SentinelKube(api).servers.get(namespace, name).get("status") or {}
    finally:
        api.close()  # type: ignore[no-untyped-call]
    return status
