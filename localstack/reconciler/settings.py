"""The reconciler's settings, read from the environment the `reconciler` stack part sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A setting is missing or unusable; the process refuses to start."""


def _url(env: Mapping[str, str], name: str, *, required: bool = True) -> str:
    raw = env.get(name, "").strip()
    if not raw and not required:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an absolute http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _path(env: Mapping[str, str], name: str) -> Path:
    raw = env.get(name, "").strip()
    if not raw:
        raise SettingsError(f"{name} is required")
    return Path(raw)


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip()
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not 0 < value < 65536:
        raise SettingsError(f"{name} must be a port number, got {raw!r}")
    return value


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
        secret = env.get("GATEWAY_CREDENTIAL_SECRET", "").strip()
        if not secret:
            raise SettingsError("GATEWAY_CREDENTIAL_SECRET is required (signs each sidecar's ingest credential)")
        issuer = _url(env, "PLATFORM_TOKEN_ISSUER", required=False)
        static = frozenset(s.strip() for s in env.get("STATIC_SERVERS", "").split(",") if s.strip())
        bad = [s for s in static if s.count("/") != 1]
        if bad:
            raise SettingsError(f"STATIC_SERVERS entries must be namespace/name, got {bad[0]!r}")
        return cls(
            data_dir=_path(env, "SENTINEL_DATA_DIR"),
            routes_file=_path(env, "MCP_ROUTES_FILE"),
            policy_dir=_path(env, "POLICY_OUTPUT_DIR"),
            public_base_url=_url(env, "MCP_PUBLIC_BASE_URL"),
            ingest_url=_url(env, "ANALYTICS_INGEST_URL", required=False),
            gateway_secret=secret,
            platform_issuer=issuer,
            platform_jwks_url=_url(env, "PLATFORM_JWKS_URL", required=bool(issuer)),
            metrics_port=_int(env, "METRICS_PORT"),
            host=env.get("LISTEN_HOST", "").strip() or "127.0.0.1",
            default_team=env.get("DEFAULT_TEAM", "").strip(),
            static_servers=static,
            resync_seconds=_float(env, "RESYNC_SECONDS", cls.resync_seconds, 0.5, 300.0),
            sidecar_ready_seconds=_float(env, "SIDECAR_READY_SECONDS", cls.sidecar_ready_seconds, 1.0, 300.0),
        )
