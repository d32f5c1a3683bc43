"""The API's hook into the server lifecycle: after an MCPServer is created, updated or deleted, ask
its ServerLifecycle workflow (`workflows/lifecycle`) to reconcile it.

Best effort by design: the Kubernetes object is the source of truth and is already written when
this runs, so a Temporal outage must not fail the request. Without Temporal configured
(`TEMPORAL_ADDRESS` unset) or reachable, the API still delivers the policy itself (its routes call
`policy_sync`), and the worker's `server-reconcile` schedule converges the server's Deployment,
Service and Ingress on its next pass; with no worker at all (the local stack), nothing is rolled
out by the API, which is the documented fallback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request

from functions.api.context import ctx_of
from functions.api.deps import temporal_client

log = logging.getLogger(__name__)


async def server_changed(request: Request, namespace: str, name: str) -> dict[str, Any]:
    """Signal-with-start `server-lifecycle/<namespace>/<name>`; returns `{"lifecycle": ...}` for the response."""
    if not ctx_of(request).settings.server_lifecycle_workflow:
        return {"lifecycle": {"state": "external"}}  # another controller (the local reconciler) owns it
    client = await temporal_client(ctx_of(request))
    if client is None:
        return {"lifecycle": {"state": "not-configured"}}
    try:
        from workflows.client import request_server_reconcile

        handle = await request_server_reconcile(client, namespace, name)
    except Exception as exc:  # the schedule repairs it; the object change itself succeeded
        log.warning("ServerLifecycle for %s/%s not started (%s); the server-reconcile schedule will catch up",
                    namespace, name, exc)
        return {"lifecycle": {"state": "deferred"}}
    return {"lifecycle": {"state": "requested", "workflowId": handle.id}}
