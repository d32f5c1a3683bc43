"""Ingest configuration, read once from the environment (same names locally and in production)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mcp_sentinel.kafka import DEFAULT_TOPIC, parse_brokers

MAX_BODY_BYTES = 1024 * 1024


class SettingsError(ValueError):
    """The environment describes an impossible configuration (message says which variable)."""


@dataclass(frozen=True)
class ApiKey:
    """One accepted ingest key; `source_prefixes` (empty = any) bind it to the sources it may write."""

    key: str
    source_prefixes: tuple[str, ...] = ()


def parse_api_keys(value: str) -> tuple[ApiKey, ...]:
    """`INGEST_API_KEYS`: comma list of `key` or `key#prefix1|prefix2` (anti-forgery binding)."""
    keys = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        key, _, prefixes = item.partition("#")
        key = key.strip()
        if not key:
            raise SettingsError(f"INGEST_API_KEYS entry {item!r} has an empty key")
        keys.append(ApiKey(key, tuple(p.strip() for p in prefixes.split("|") if p.strip())))
    return tuple(keys)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


@dataclass(frozen=True)
class IngestSettings:
    """Everything the ingest function reads from its environment."""

    port: int = 8081
    metrics_port: int = 9091
    host: str = "0.0.0.0"  # containers listen on all interfaces; the local stack passes 127.0.0.1
    brokers: tuple[str, ...] = ("kafka:9092",)
    topic: str = DEFAULT_TOPIC
    api_keys: tuple[ApiKey, ...] = ()
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    allow_unauthenticated: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    produce_timeout_ms: int = 10_000
    linger_ms: int = 5
    enable_idempotence: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IngestSettings:
        """Read and check the environment; raises SettingsError naming the bad variable."""
        keys_raw = environ.get("INGEST_API_KEYS", "").strip() or environ.get("API_KEYS", "")
        issuer = environ.get("OIDC_ISSUER", "").strip()
        audience = environ.get("OIDC_AUDIENCE", "").strip()
        jwks = environ.get("OIDC_JWKS_URL", "").strip()
        if (issuer or audience) and not jwks:
            raise SettingsError("OIDC_ISSUER/OIDC_AUDIENCE are set but OIDC_JWKS_URL is not")
        if jwks and not (issuer or audience):
            raise SettingsError("OIDC_JWKS_URL is set but neither OIDC_ISSUER nor OIDC_AUDIENCE is")
        brokers = tuple(parse_brokers(environ.get("KAFKA_BROKERS", "kafka:9092")))
        if not brokers:
            raise SettingsError("KAFKA_BROKERS is empty")
        return cls(
            port=_int(environ, "PORT", 8081),
            metrics_port=_int(environ, "METRICS_PORT", 9091),
            host=environ.get("HOST", "0.0.0.0"),
            brokers=brokers,
            topic=environ.get("KAFKA_TOPIC", "").strip() or DEFAULT_TOPIC,
            api_keys=parse_api_keys(keys_raw),
            oidc_issuer=issuer,
            oidc_audience=audience,
            oidc_jwks_url=jwks,
            allow_unauthenticated=_truthy(environ.get("INGEST_ALLOW_UNAUTHENTICATED")),
            produce_timeout_ms=_int(environ, "KAFKA_PRODUCE_TIMEOUT_MS", 10_000),
            linger_ms=_int(environ, "KAFKA_LINGER_MS", 5),
            enable_idempotence=_truthy(environ.get("KAFKA_ENABLE_IDEMPOTENCE")),
        )
