"""The `processor` part: `python -m functions.processor` writing to the embedded ClickHouse."""

from __future__ import annotations

from localstack.config import StackConfig
from localstack.parts.clickhouse import clickhouse_url
from localstack.supervisor import PYTHON, Component
from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG


def processor_env(cfg: StackConfig) -> dict[str, str]:
    """Environment of the local processor (same names as in production)."""
    return {
        "PORT": str(cfg.ports.processor),
        "HOST": cfg.host,
        "METRICS_PORT": str(cfg.ports.processor_metrics),
        "METRICS_ADDR": cfg.host,
        "CLICKHOUSE_URL": clickhouse_url(cfg),
        "CLICKHOUSE_DB": "mcp",
        "PROCESSOR_DELIVERY_TOKEN": cfg.processor_delivery_token,
        # The local stack runs with its published keys (mcp_sentinel/secrets_check.py).
        LOCAL_DEV_FLAG: "1",
    }


def components(cfg: StackConfig) -> list[Component]:
    """The processor; ready once its own `/live` answers (it reconnects to ClickHouse by itself)."""
    return [
        Component(
            name="processor",
            argv=[PYTHON, "-m", "functions.processor"],
            env=processor_env(cfg),
            health_url=cfg.url("processor", "/live"),
            startup_timeout=60.0,
            description=f"processor on :{cfg.ports.processor} (metrics :{cfg.ports.processor_metrics})",
        )
    ]
