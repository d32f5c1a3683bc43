"""The platform's own components as the operations page sees them, where they are not Kubernetes objects.

In a cluster the API lists Deployments and Knative Services. On one machine the components are
processes of the local stack, which only the local stack knows: it injects an object with this
shape when it starts the API (`python -m localstack.api`), so the API never imports it.
"""

from __future__ import annotations

from typing import Any, Protocol

from functions.api.context import ApiContext
from functions.api.errors import unavailable

EXTRA_KEY = "local_components"


class LocalComponents(Protocol):
    """The local stack's processes (injected; see module docstring)."""

    def status(self, probe_seconds: float) -> list[dict[str, Any]]:
        """One row per component: name, state, health probe result, pid, uptime."""

    def running(self) -> list[str]:
        """Components the local supervisor runs now (what a local restart of `all` may touch)."""


def local_components(ctx: ApiContext) -> LocalComponents:
    """The injected local backend; 503 when COMPONENTS_BACKEND=local but the API was started without it."""
    found = ctx.extras.get(EXTRA_KEY)
    if found is None:
        raise unavailable("COMPONENTS_BACKEND=local needs the local stack's API entry point "
                          "(python -m localstack.api), which supplies the component table")
    backend: LocalComponents = found
    return backend
