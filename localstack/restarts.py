"""Restarts of local-stack processes: the worker's RestartBackend when it runs under `./dev up`.

The product's worker knows only Kubernetes restarts; the local stack starts the worker through
`python -m localstack.worker`, which injects this backend (product code never imports localstack).
"""

from __future__ import annotations

from pathlib import Path

from localstack.control import ControlDir
from workflows.restarts.activities import RolloutStatus


class LocalRestarts:
    """Restart local-stack processes by asking the supervisor through its control folder."""

    def __init__(self, run_dir: Path) -> None:
        self.control = ControlDir(run_dir)

    def _rid(self, component: str, token: str) -> str:
        return f"restart-{component}-{token}"

    def components(self) -> list[str]:
        """What the supervisor runs now."""
        return self.control.components()

    def trigger(self, component: str, token: str) -> None:
        """Drop a restart request (idempotent per token)."""
        if component not in self.control.components():
            raise KeyError(component)
        self.control.request_restart(component, self._rid(component, token))

    def status(self, component: str, token: str) -> RolloutStatus:
        """The supervisor answers once the restarted process is healthy (or failed to start)."""
        res = self.control.result(self._rid(component, token))
        if res is None:
            return RolloutStatus(False, False, "waiting for the local supervisor")
        return RolloutStatus(res.ok, not res.ok, res.detail)
