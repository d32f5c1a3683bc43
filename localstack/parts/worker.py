"""Local-stack part: the Temporal worker (`python -m workflows`), restarting local processes."""

from __future__ import annotations

from localstack.config import StackConfig
from localstack.parts.postgres import postgres_dsn
from localstack.supervisor import PYTHON, Component, tcp_open
from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG


def worker_env(cfg: StackConfig) -> dict[str, str]:
    """The worker's environment in the local stack."""
    return {
        "TEMPORAL_ADDRESS": f"{cfg.host}:{cfg.ports.temporal}",
        "TEMPORAL_NAMESPACE": "default",
        "KUBECONFIG": str(cfg.kubeconfig),
        "POSTGRES_DSN": postgres_dsn(cfg),
        "POLICY_OUTPUT_DIR": str(cfg.path("policies")),
        "RESTART_BACKEND": "local",
        "SENTINEL_RUN_DIR": str(cfg.path("run")),
        "METRICS_PORT": str(cfg.ports.worker_metrics),
        "METRICS_HOST": cfg.host,
        "RECONCILE_INTERVAL_SECONDS": "60",
        # The `reconciler` part owns MCPServers locally (sidecar processes, routes, status): no schedule
        # of the cluster's server reconcile writing a second, Deployment-based status beside it.
        "SERVER_RECONCILE_INTERVAL_SECONDS": "0",
        # The local stack runs with its published keys (mcp_sentinel/secrets_check.py).
        LOCAL_DEV_FLAG: "1",
    }


def components(cfg: StackConfig) -> list[Component]:
    """One worker process for every task queue; healthy once its metrics port answers."""
    return [
        Component(
            name="worker",
            argv=[PYTHON, "-m", "localstack.worker"],
            env=worker_env(cfg),
            health_check=lambda: tcp_open(cfg.ports.worker_metrics, cfg.host),
            startup_timeout=60.0,
            description=f"(metrics {cfg.url('worker_metrics', '/metrics')})",
        )
    ]
