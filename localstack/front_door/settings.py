"""Front-door settings, read from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

SERVER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class SettingsError(ValueError):
    """A setting is present but unusable; the process refuses to start."""


def _url(name: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an absolute http(s) URL, got {raw!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def parse_servers(raw: str) -> dict[str, str]:
    """`server-a=http://127.0.0.1:8091,server-b=...` -> {name: base URL}."""
    servers: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, url = item.partition("=")
        name = name.strip()
        if not sep or not SERVER_NAME.match(name):
            raise SettingsError(f"MCP_SERVERS entries must look like name=http://host:port, got {item!r}")
        servers[name] = _url(f"MCP_SERVERS[{name}]", url)
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
        raw_port = environ.get("PORT", "18080").strip()
        try:
            port = int(raw_port)
        except ValueError as exc:
            raise SettingsError(f"PORT must be an integer, got {raw_port!r}") from exc
        return cls(
            host=environ.get("HOST", "127.0.0.1").strip() or "127.0.0.1",
            port=port,
            ui_url=_url("UI_UPSTREAM", environ.get("UI_UPSTREAM", cls.ui_url)),
            ingest_url=_url("INGEST_UPSTREAM", environ.get("INGEST_UPSTREAM", cls.ingest_url)),
            servers=parse_servers(environ.get("MCP_SERVERS", "")),
            routes_file=Path(raw_routes) if (raw_routes := environ.get("MCP_ROUTES_FILE", "").strip()) else None,
        )
