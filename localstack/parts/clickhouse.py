"""The `clickhouse` part: the embedded ClickHouse HTTP server over the chdb data folder.

Other parts reach it with `CLICKHOUSE_URL=clickhouse_url(cfg)`; pointing that variable at a real
ClickHouse is the only change production needs.
"""

from __future__ import annotations

from localstack.config import StackConfig
from localstack.supervisor import PYTHON, Component


def clickhouse_url(cfg: StackConfig) -> str:
    """`CLICKHOUSE_URL` of the local server."""
    return cfg.url("clickhouse_http")


def components(cfg: StackConfig) -> list[Component]:
    """One process owning `<data>/clickhouse` (chdb allows a single owner per folder)."""
    return [
        Component(
            name="clickhouse",
            argv=[
                PYTHON, "-m", "localstack.clickhouse_server",
                "--host", cfg.host, "--port", str(cfg.ports.clickhouse_http), "--path", str(cfg.path("clickhouse")),
            ],  # fmt: skip
            health_url=cfg.url("clickhouse_http", "/ping"),
            startup_timeout=90.0,
            stop_timeout=20.0,
            description=f"embedded ClickHouse (chdb) HTTP on :{cfg.ports.clickhouse_http}",
        )
    ]
