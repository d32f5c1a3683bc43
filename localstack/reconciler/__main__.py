"""`python -m localstack.reconciler`: run the local MCPServer reconciler until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from localstack.reconciler.settings import ReconcilerSettings
from mcp_sentinel.env import load_or_exit


def _exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    """Reconcile until told to stop; then stop every sidecar and empty the route table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_or_exit("reconciler", lambda: ReconcilerSettings.from_env(os.environ))
    from prometheus_client import Counter, Gauge, start_http_server

    from localstack.reconciler.loop import Reconciler
    from localstack.reconciler.processes import SidecarPool
    from mcp_sentinel.kube.client import load_kube
    from mcp_sentinel.kube.resources import SentinelKube

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    pool = SidecarPool(settings.data_dir / "logs", settings.host)
    errors = Counter("sentinel_local_reconciler_errors", "Relists and reconciles that failed (retried)")
    reconciler = Reconciler(settings, SentinelKube(load_kube(os.environ)), pool, on_error=errors.inc)
    Gauge("sentinel_local_reconciler_sidecars", "Sidecar processes the local reconciler runs").set_function(
        lambda: len(pool.running))

    def ready() -> None:
        # The metrics port opens after the first full relist: the supervisor's health check means "synced".
        start_http_server(settings.metrics_port, addr=settings.host)

    try:
        reconciler.run(ready)
    finally:
        reconciler.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
