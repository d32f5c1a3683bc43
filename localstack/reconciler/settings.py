"""The reconciler's settings, read from the environment the `reconciler` stack part sets
(parsed with `mcp_sentinel.env`, like every component)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mcp_sentinel.env import SettingsError, base_url, integer, items, number, text

__all__ = ["ReconcilerSettings", "SettingsError"]


def _path(env: Mapping[str, str], name: str) -> Path:
    raw = text(env, name)
    if not raw:
        raise SettingsError(f"{name} is required")
    return Path(raw)


def _missing(name: str) -> int:
    raise SettingsError(f"{name} is required (the supervisor's health check and Prometheus read it)")


@dataclass(frozen=True)
class ReconcilerSettings:
    """Where state goes and what every spawned sidecar is wired to."""

    data_dir: Path
    routes_file: Path
    policy_dir: Path
    public_base_url: str
    ingest_url: str
    gateway_secret: str
    platform_issuer: str
    platform_jwks_url: str
    metrics_port: int
    host: str = "127.0.0.1"
    default_team: str = ""
    # `namespace/name` of servers the stack serves with fixed sidecars (parts/sidecars.py): left alone.
    static_servers: frozenset[str] = frozenset()
    # Every this many seconds: relist, restart dead sidecars, re-deliver policies (drift repair).
    resync_seconds: float = 5.0
    sidecar_ready_seconds: float = 20.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReconcilerSettings:
        """Build from `SENTINEL_DATA_DIR`, `MCP_ROUTES_FILE`, `POLICY_OUTPUT_DIR`, `MCP_PUBLIC_BASE_URL`, ..."""
        secret = text(env, "GATEWAY_CREDENTIAL_SECRET")
        if not secret:
            raise SettingsError("GATEWAY_CREDENTIAL_SECRET is required (signs each sidecar's ingest credential)")
        public = base_url(env, "MCP_PUBLIC_BASE_URL")
        if not public:
            raise SettingsError("MCP_PUBLIC_BASE_URL is required (the front door: each server's public URL)")
        issuer = base_url(env, "PLATFORM_TOKEN_ISSUER")
        jwks = text(env, "PLATFORM_JWKS_URL")
        if issuer and not jwks:
            raise SettingsError("PLATFORM_JWKS_URL is required with PLATFORM_TOKEN_ISSUER")
        static = frozenset(items(env, "STATIC_SERVERS"))
        bad = [s for s in static if s.count("/") != 1]
        if bad:
            raise SettingsError(f"STATIC_SERVERS entries must be namespace/name, got {bad[0]!r}")
        return cls(
            data_dir=_path(env, "SENTINEL_DATA_DIR"),
            routes_file=_path(env, "MCP_ROUTES_FILE"),
            policy_dir=_path(env, "POLICY_OUTPUT_DIR"),
            public_base_url=public,
            ingest_url=base_url(env, "ANALYTICS_INGEST_URL"),
            gateway_secret=secret,
            platform_issuer=issuer,
            platform_jwks_url=base_url(env, "PLATFORM_JWKS_URL") if jwks else "",
            metrics_port=integer(env, "METRICS_PORT", 0, minimum=1, maximum=65535) or _missing("METRICS_PORT"),
            host=text(env, "LISTEN_HOST", "127.0.0.1"),
            default_team=text(env, "DEFAULT_TEAM"),
            static_servers=static,
            resync_seconds=number(env, "RESYNC_SECONDS", cls.resync_seconds, minimum=0.5, maximum=300.0),
            sidecar_ready_seconds=number(env, "SIDECAR_READY_SECONDS", cls.sidecar_ready_seconds, minimum=1.0,
                                         maximum=300.0),
        )
