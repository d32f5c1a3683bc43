"""Connection settings and a clickhouse-connect client built from `CLICKHOUSE_URL`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from mcp_sentinel.env import SettingsError, http_url, integer, text

_DB_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_URL = "http://127.0.0.1:18123"


def validate_database(name: str) -> str:
    """`name` if it is a plain identifier (it is spliced into DDL), else SettingsError."""
    if not _DB_RE.match(name):
        raise SettingsError(f"CLICKHOUSE_DB must match {_DB_RE.pattern}, got {name!r}")
    return name


@dataclass(frozen=True)
class ClickHouseSettings:
    """Where the events live: URL (credentials in it), database and retention."""

    url: str = DEFAULT_URL
    database: str = "mcp"
    retention_days: int = 90

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClickHouseSettings:
        """`CLICKHOUSE_URL`, `CLICKHOUSE_DB` (default `mcp`), `EVENTS_RETENTION_DAYS` (default 90)."""
        env = os.environ if environ is None else environ
        return cls(
            url=http_url(env, "CLICKHOUSE_URL", DEFAULT_URL),
            database=validate_database(text(env, "CLICKHOUSE_DB", "mcp")),
            retention_days=integer(env, "EVENTS_RETENTION_DAYS", 90, minimum=1),
        )


def clickhouse_client_from_url(url: str, database: str | None = None, **kwargs: Any) -> Any:
    """A clickhouse-connect HTTP client for `http[s]://[user[:password]@]host[:port][/database]`.

    `database` wins over the URL path; `?secure=1`-style query options are passed through.
    Sessions are off: with a session id a real server refuses concurrent queries from one
    client ("session is locked"), and nothing here relies on session state.
    """
    import clickhouse_connect

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"CLICKHOUSE_URL must be http(s)://host[:port], got {url!r}")
    secure = parts.scheme == "https"
    path_db = parts.path.strip("/")
    opts: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    opts.update(kwargs)
    opts.setdefault("autogenerate_session_id", False)
    opts.setdefault("connect_timeout", 5)
    opts.setdefault("send_receive_timeout", 60)
    return clickhouse_connect.get_client(
        host=parts.hostname,
        port=parts.port or (8443 if secure else 8123),
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        database=database or path_db or "default",
        secure=secure,
        **opts,
    )
