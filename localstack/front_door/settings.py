"""Front-door settings, read from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mcp_sentinel.env import SettingsError as SettingsError
from mcp_sentinel.env import base_url, integer, parse_base_url, text

SERVER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def parse_servers(raw: str) -> dict[str, str]:
    """`server-a=http://127.0.0.1:8091,server-b=...` -> {name: base URL}."""
    servers: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, url = item.partition("=")
        name = name.strip()
        if not sep or not SERVER_NAME.match(name):
            raise SettingsError(f"MCP_SERVERS entries must look like name=http://host:port, got {item!r}")
        servers[name] = parse_base_url(f"MCP_SERVERS[{name}]", url)
    return servers


@dataclass(frozen=True)
class FrontDoorSettings:
    """Where the front door listens and where each route goes."""

    host: str = "127.0.0.1"
    port: int = 18080
    ui_url: str = "http://127.0.0.1:8082"
    ingest_url: str = "http://127.0.0.1:8081"
    # server name -> sidecar base URL; `/<name>/mcp...` is forwarded as `/mcp...`.
    servers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0
    # The dynamic route table the local reconciler writes (localstack/front_door/routes_file.py).
    routes_file: Path | None = None
    routes_poll_interval: float = 0.1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> FrontDoorSettings:
        """Build settings from `HOST`, `PORT`, `UI_UPSTREAM`, `INGEST_UPSTREAM`, `MCP_SERVERS`, `MCP_ROUTES_FILE`."""
        return cls(
            host=text(environ, "HOST", cls.host),
            port=integer(environ, "PORT", cls.port, minimum=0, maximum=65535),
            ui_url=base_url(environ, "UI_UPSTREAM", cls.ui_url),
            ingest_url=base_url(environ, "INGEST_UPSTREAM", cls.ingest_url),
            servers=parse_servers(environ.get("MCP_SERVERS", "")),
            routes_file=Path(raw) if (raw := text(environ, "MCP_ROUTES_FILE", "")) else None,
        )
