"""A real API process with the backends the governance routes need (kube API server, ClickHouse,
Postgres), for the tests that drive it over HTTP with schemathesis."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.migrations import migrate

ADMIN_KEY = StackConfig().admin_api_key
UNCONFIGURED = frozenset({"TEMPORAL_ADDRESS", "PROMETHEUS_URL"})


@contextmanager
def live_api() -> Iterator[str]:
    """The base URL of a running API over real Postgres, ClickHouse and Kubernetes API server."""
    data = Path(tempfile.mkdtemp(prefix="sentinel-fuzz-"))
    data.chmod(0o755)  # the postgres OS user must traverse it
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    try:
        with Supervisor(cfg) as sup:
            sup.start_all(local_stack(cfg, only={"clickhouse", "postgres", "kube"}))
            # The processor owns migrations in the stack; this test runs without it.
            migrate(clickhouse_client_from_url(cfg.url("clickhouse_http")), "mcp")
            # Without Temporal and Prometheus, as a deployment that does not configure them: the
            # routes needing them answer 404 `not_configured`, as documented.
            sup.start_all([
                dataclasses.replace(c, env={k: v for k, v in c.env.items() if k not in UNCONFIGURED})
                for c in local_stack(cfg, only={"api"})
            ])
            yield cfg.url("api")
    finally:
        shutil.rmtree(data, ignore_errors=True)
