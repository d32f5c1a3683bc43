"""Ingest configuration, read once from the environment (same names locally and in production)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mcp_sentinel.env import SettingsError as SettingsError
from mcp_sentinel.env import flag, integer, parse_items, text
from mcp_sentinel.gateway_credentials import CredentialError, GatewayBinding, check_binding, check_secret
from mcp_sentinel.kafka import DEFAULT_TOPIC, parse_brokers

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ApiKey:
    """One accepted static ingest key.

    `binding` ties it to one server (its events must name that `server`/`namespace`; `team_id` is
    stamped from it); `source_prefixes` (empty = any) limit the `source` it may write. A key
    without a binding is refused unless `INGEST_ALLOW_UNBOUND_KEYS=true` (local development).
    """

    key: str
    source_prefixes: tuple[str, ...] = ()
    binding: GatewayBinding | None = None


def _parse_binding(item: str, spec: str) -> tuple[tuple[str, ...], GatewayBinding | None]:
    if "=" not in spec:  # the older form: `key#prefix1|prefix2`
        return tuple(p.strip() for p in spec.split("|") if p.strip()), None
    fields: dict[str, str] = {}
    for part in spec.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name and not eq:
            continue
        if name not in {"server", "team", "source"} or not eq or name in fields:
            raise SettingsError(f"INGEST_API_KEYS entry {item!r}: expected server=<namespace>/<name>[;team=<team>]"
                                "[;source=<prefix>|...]")
        fields[name] = value.strip()
    prefixes = tuple(p.strip() for p in fields.get("source", "").split("|") if p.strip())
    if "server" not in fields:
        if "team" in fields:
            raise SettingsError(f"INGEST_API_KEYS entry {item!r}: team= needs server=")
        return prefixes, None
    ns, slash, name = fields["server"].partition("/")
    binding = GatewayBinding(ns.strip(), name.strip(), fields.get("team", ""))
    try:
        if not slash:
            raise CredentialError("server= must be <namespace>/<name>")
        check_binding(binding)
    except CredentialError as exc:
        raise SettingsError(f"INGEST_API_KEYS entry {item!r}: {exc}") from None
    return prefixes, binding


def parse_api_keys(value: str) -> tuple[ApiKey, ...]:
    """`INGEST_API_KEYS`: comma list of `key`, `key#prefix1|prefix2` or `key#server=ns/name;team=t;source=p|q`."""
    keys = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        key, _, spec = item.partition("#")
        key = key.strip()
        if not key:
            raise SettingsError(f"INGEST_API_KEYS entry {item!r} has an empty key")
        prefixes, binding = _parse_binding(item, spec)
        keys.append(ApiKey(key, prefixes, binding))
    return tuple(keys)


def parse_gateway_secrets(value: str) -> tuple[str, ...]:
    """`INGEST_GATEWAY_SECRET`: comma list (first current, the rest still accepted while rotating)."""
    secrets = parse_items(value)
    for secret in secrets:
        try:
            check_secret(secret)
        except CredentialError as exc:
            raise SettingsError(f"INGEST_GATEWAY_SECRET: {exc}") from None
    return secrets


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
    gateway_secrets: tuple[str, ...] = ()
    allow_unbound_keys: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    produce_timeout_ms: int = 10_000
    linger_ms: int = 5
    enable_idempotence: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> IngestSettings:
        """Read and check the environment; raises SettingsError naming the bad variable."""
        keys_raw = environ.get("INGEST_API_KEYS", "").strip() or environ.get("API_KEYS", "")
        issuer = text(environ, "OIDC_ISSUER")
        audience = text(environ, "OIDC_AUDIENCE")
        jwks = text(environ, "OIDC_JWKS_URL")
        if (issuer or audience) and not jwks:
            raise SettingsError("OIDC_ISSUER/OIDC_AUDIENCE are set but OIDC_JWKS_URL is not")
        if jwks and not (issuer or audience):
            raise SettingsError("OIDC_JWKS_URL is set but neither OIDC_ISSUER nor OIDC_AUDIENCE is")
        api_keys = parse_api_keys(keys_raw)
        allow_unbound = flag(environ, "INGEST_ALLOW_UNBOUND_KEYS")
        unbound = sum(1 for k in api_keys if k.binding is None)
        if unbound and not allow_unbound:
            raise SettingsError(
                f"INGEST_API_KEYS has {unbound} key(s) not bound to a server (server=<namespace>/<name>); "
                "every gateway writes with its own bound credential (INGEST_GATEWAY_SECRET) "
                "(set INGEST_ALLOW_UNBOUND_KEYS=true only for local development)"
            )
        brokers = tuple(parse_brokers(environ.get("KAFKA_BROKERS", "kafka:9092")))
        if not brokers:
            raise SettingsError("KAFKA_BROKERS is empty")
        return cls(
            port=integer(environ, "PORT", 8081, minimum=1, maximum=65535),
            metrics_port=integer(environ, "METRICS_PORT", 9091, minimum=1, maximum=65535),
            host=environ.get("HOST", "0.0.0.0"),
            brokers=brokers,
            topic=text(environ, "KAFKA_TOPIC", DEFAULT_TOPIC),
            api_keys=api_keys,
            gateway_secrets=parse_gateway_secrets(environ.get("INGEST_GATEWAY_SECRET", "")),
            allow_unbound_keys=allow_unbound,
            oidc_issuer=issuer,
            oidc_audience=audience,
            oidc_jwks_url=jwks,
            allow_unauthenticated=flag(environ, "INGEST_ALLOW_UNAUTHENTICATED"),
            produce_timeout_ms=integer(environ, "KAFKA_PRODUCE_TIMEOUT_MS", 10_000, minimum=1),
            linger_ms=integer(environ, "KAFKA_LINGER_MS", 5, minimum=1),
            enable_idempotence=flag(environ, "KAFKA_ENABLE_IDEMPOTENCE"),
        )
