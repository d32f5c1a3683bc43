"""The `front_door` part: one local port (18080) in front of the UI, ingest and the sidecars."""

from __future__ import annotations

from pathlib import Path

from localstack.config import StackConfig
from localstack.supervisor import PYTHON, Component

# Local sidecars and the Ports fields that hold their proxy ports (see the `sidecars` part).
SIDECARS = {"server-a": "sidecar_a", "server-b": "sidecar_b"}


def routes_file(cfg: StackConfig) -> Path:
    """The dynamic route table the `reconciler` part writes and the front door re-reads."""
    return cfg.path("front_door", "routes.json")


def components(cfg: StackConfig) -> list[Component]:
    """The front-door process."""
    servers = ",".join(f"{name}={cfg.url(port)}" for name, port in SIDECARS.items())
    return [
        Component(
            name="front_door",
            argv=[PYTHON, "-m", "localstack.front_door"],
            env={
                "HOST": cfg.host,
                "PORT": str(cfg.ports.front_door),
                "UI_UPSTREAM": cfg.url("ui"),
                "INGEST_UPSTREAM": cfg.url("ingest"),
                "MCP_SERVERS": servers,
                "MCP_ROUTES_FILE": str(routes_file(cfg)),
            },
            health_url=cfg.url("front_door", "/__front_door/health"),
            startup_timeout=30.0,
            description=f"on {cfg.url('front_door')} (/ -> ui, /ingest -> ingest, /<server>/mcp -> sidecar)",
        )
    ]
