"""The `ingest` part: `python -m functions.ingest` on the local ports, producing to the local broker."""

from __future__ import annotations

from localstack.config import StackConfig
from localstack.parts.kafka import bootstrap
from localstack.supervisor import PYTHON, Component
from mcp_sentinel.kafka import DEFAULT_TOPIC
from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG


def ingest_env(cfg: StackConfig) -> dict[str, str]:
    """The environment the local ingest runs with (same variable names as in Knative)."""
    return {
        "PORT": str(cfg.ports.ingest),
        "METRICS_PORT": str(cfg.ports.ingest_metrics),
        "HOST": cfg.host,
        "KAFKA_BROKERS": bootstrap(cfg),
        "KAFKA_TOPIC": DEFAULT_TOPIC,
        "INGEST_API_KEYS": cfg.ingest_api_key,
        "INGEST_ALLOW_UNBOUND_KEYS": "true",  # the local key above; the sidecars use bound credentials
        "INGEST_GATEWAY_SECRET": cfg.ingest_gateway_secret,
        "OTEL_SERVICE_NAME": "mcp-sentinel-ingest",
        # The local stack runs with its published keys (mcp_sentinel/secrets_check.py).
        LOCAL_DEV_FLAG: "1",
    }


def components(cfg: StackConfig) -> list[Component]:
    """The ingest function process."""
    return [
        Component(
            name="ingest",
            argv=[PYTHON, "-m", "functions.ingest"],
            env=ingest_env(cfg),
            health_url=cfg.url("ingest", "/live"),
            startup_timeout=60.0,
            description=f"(POST {cfg.url('ingest', '/events')})",
        )
    ]
