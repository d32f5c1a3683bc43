"""The API's entry to policy delivery: `mcp_sentinel.policy_delivery` over the API's own client.

One implementation serves the API, the reconcile schedule and the server lifecycle workflow;
this module only adapts the API's `SentinelKube` to it (same ApiClient, no second connection).
"""

from __future__ import annotations

from pathlib import Path

from mcp_sentinel.kube.resources import SentinelKube
from mcp_sentinel.policy_delivery import PolicySync, deliver_policy

__all__ = ["PolicySync", "sync_server_policy"]


def sync_server_policy(
    kube: SentinelKube,
    namespace: str,
    server: str,
    *,
    output_dir: Path | None = None,
    cluster: str = "local",
) -> PolicySync:
    """Render and deliver `namespace/server`'s policy (blocking; call from a thread).

    Raises PolicyError (a ValueError) when the render is invalid: the old policy stays active.
    A gateway-disabled server has its delivered policy removed (see `mcp_sentinel.policy_delivery`).
    """
    return deliver_policy(kube.objects, namespace, server, output_dir=output_dir, cluster_name=cluster)
