"""UI settings, read once from the environment (same names locally and in production)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mcp_sentinel import client_address
from mcp_sentinel.client_address import Network
from mcp_sentinel.env import SettingsError as SettingsError
from mcp_sentinel.env import flag, integer, items, number, parse_bool, text

__all__ = ["Network", "RateLimits", "SettingsError", "UiSettings", "parse_networks"]


def parse_networks(name: str, raw: str | None) -> tuple[Network, ...]:
    """A comma list of IPs/CIDRs (`UI_TRUSTED_PROXIES`)."""
    try:
        return client_address.parse_networks(name, raw)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class RateLimits:
    """Login throttling (§8.2 defaults): a token bucket plus a failure lockout, per client address."""

    capacity: float = 10.0
    refill_per_minute: float = 1.0
    failure_threshold: int = 5
    failure_window: float = 15 * 60.0
    lockout: float = 5 * 60.0


@dataclass(frozen=True)
class UiSettings:
    """Everything the UI function reads from its environment."""

    host: str = "0.0.0.0"
    port: int = 8082
    api_upstream: str = "http://127.0.0.1:8080"
    api_base: str = "/api"
    # "auto": redirect plain-HTTP requests for non-local hosts; "true": always (non-local); "false": never.
    require_https: str = "auto"
    force_secure_cookie: bool = False
    session_dir: Path = Path(".data/ui-sessions")
    session_secret: str = ""
    session_ttl: float = 8 * 3600.0
    admin_api_keys: frozenset[str] = frozenset()
    trusted_proxies: tuple[Network, ...] = ()
    default_namespace: str = "mcp-servers"
    default_policy_version: str = "v1"
    platform_mode: str = "tenant"
    google_client_id: str = ""
    front_door_url: str = ""
    upstream_timeout: float = 30.0
    limits: RateLimits = field(default_factory=RateLimits)

    def __post_init__(self) -> None:
        if self.require_https not in ("auto", "true", "false"):
            raise SettingsError(f"UI_REQUIRE_HTTPS must be auto, true or false, got {self.require_https!r}")
        if not self.api_upstream.startswith(("http://", "https://")):
            raise SettingsError(f"API_UPSTREAM must be an http(s) URL, got {self.api_upstream!r}")
        if self.platform_mode not in ("tenant", "org", "public"):
            raise SettingsError(f"PLATFORM_MODE must be tenant, org or public, got {self.platform_mode!r}")

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies always carry `Secure` (else only on HTTPS requests)."""
        return self.force_secure_cookie or self.require_https != "false"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> UiSettings:
        """Build from an environment mapping; raises SettingsError naming the bad variable."""
        d = cls()
        e = environ
        raw_https = text(e, "UI_REQUIRE_HTTPS", "auto").lower()
        # auto, or a boolean in any of its spellings (a typo is an error, never "false")
        https = raw_https if raw_https == "auto" else str(parse_bool("UI_REQUIRE_HTTPS", raw_https)).lower()
        limits = RateLimits(
            capacity=number(e, "UI_LOGIN_RATE_CAPACITY", d.limits.capacity, positive=True),
            refill_per_minute=number(e, "UI_LOGIN_RATE_REFILL", d.limits.refill_per_minute, positive=True),
            failure_threshold=integer(e, "UI_LOGIN_FAILURE_THRESHOLD", d.limits.failure_threshold, minimum=1),
            failure_window=number(e, "UI_LOGIN_FAILURE_WINDOW", d.limits.failure_window, positive=True),
            lockout=number(e, "UI_LOGIN_LOCKOUT", d.limits.lockout, positive=True),
        )
        return cls(
            host=e.get("HOST", d.host) or d.host,
            port=integer(e, "PORT", d.port, minimum=1, maximum=65535),
            api_upstream=(e.get("API_UPSTREAM", "") or d.api_upstream).rstrip("/"),
            api_base=e.get("API_BASE", "") or d.api_base,
            require_https=https,
            force_secure_cookie=flag(e, "UI_FORCE_SECURE_COOKIE"),
            session_dir=Path(e.get("UI_SESSION_DIR", "") or d.session_dir),
            session_secret=e.get("UI_SESSION_SECRET", ""),
            session_ttl=number(e, "UI_SESSION_TTL_SECONDS", d.session_ttl, positive=True),
            admin_api_keys=frozenset(items(e, "ADMIN_API_KEYS")),
            trusted_proxies=parse_networks("UI_TRUSTED_PROXIES", e.get("UI_TRUSTED_PROXIES")),
            default_namespace=e.get("UI_DEFAULT_NAMESPACE", "") or d.default_namespace,
            default_policy_version=e.get("UI_DEFAULT_POLICY_VERSION", "") or d.default_policy_version,
            platform_mode=(e.get("PLATFORM_MODE", "") or e.get("MCP_PLATFORM_MODE", "") or d.platform_mode).lower(),
            google_client_id=e.get("UI_GOOGLE_CLIENT_ID", "") or e.get("GOOGLE_CLIENT_ID", ""),
            front_door_url=(e.get("UI_FRONT_DOOR_URL", "")).rstrip("/"),
            upstream_timeout=number(e, "UI_UPSTREAM_TIMEOUT", d.upstream_timeout, positive=True),
            limits=limits,
        )
