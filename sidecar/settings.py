"""Sidecar settings, read once from the environment (names as upstream §4.1 plus AUDIT_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sidecar.origin import OriginConfigError, OriginGuard, split_list


class SettingsError(ValueError):
    """A setting is present but unusable; the process refuses to start."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def _origin_settings(env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    hosts, origins = split_list(env.get("ALLOWED_HOSTS", "")), split_list(env.get("ALLOWED_ORIGINS", ""))
    try:
        OriginGuard(hosts, origins, _external_base(env.get("EXTERNAL_BASE_URL", "")))
    except OriginConfigError as exc:
        raise SettingsError(str(exc)) from None
    return {"allowed_hosts": hosts, "allowed_origins": origins}


def _external_base(raw: str) -> str:
    raw = raw.strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"EXTERNAL_BASE_URL must be an absolute http(s) URL, got {raw!r}")
    # Query and fragment are dropped; a trailing slash on the base path is not significant.
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _http_url(name: str, raw: str) -> str:
    raw = raw.strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an absolute http(s) URL, got {raw!r}")
    return raw


@dataclass(frozen=True)
class SidecarSettings:
    """Everything the sidecar reads from its environment."""

    port: int = 8091
    metrics_port: int = 9103
    host: str = "0.0.0.0"
    upstream_url: str = "http://127.0.0.1:8090"
    policy_file: str = ""
    server_name: str = ""
    server_namespace: str = ""
    cluster_name: str = ""
    human_id_header: str = "X-MCP-Human-ID"
    agent_id_header: str = "X-MCP-Agent-ID"
    team_id_header: str = "X-MCP-Team-ID"
    session_id_header: str = "X-MCP-Agent-Session"
    policy_mode: str = "allow-list"
    default_decision: str = "deny"
    policy_version: str = "v1"
    analytics_ingest_url: str = ""
    analytics_api_key: str = ""
    analytics_source: str = "mcp-gateway"
    analytics_event_type: str = "mcp.request"
    strip_prefix: str = ""
    external_base_url: str = ""
    audit_spool_dir: str = ""
    audit_spool_max_bytes: int = 256 * 1024 * 1024
    audit_batch_size: int = 500
    policy_poll_interval: float = 0.5
    max_body_bytes: int = 1024 * 1024
    # Forward the *validated* OAuth bearer token upstream (never the raw inbound header in header
    # mode). Off by default: MCP forbids token passthrough (spec SEC "Access Token Privilege Restriction").
    forward_bearer_token: bool = False
    otel_endpoint: str = ""
    otel_service_name: str = "mcp-gateway"
    # "fast": the pooled httptools client for plain-HTTP upstreams (aiohttp still carries HEAD,
    # streamed request bodies and https); "aiohttp": aiohttp for everything (escape hatch, baseline).
    upstream_client: str = "fast"
    # mTLS (upstream §3.11, §4.1): the identity header the TLS-terminating ingress sets, and the
    # SPIFFE ID that ingress's client certificate must carry (empty: any verified client cert).
    verified_spiffe_header: str = "X-MCP-Verified-SPIFFE-ID"
    trusted_proxy_spiffe_id: str = ""
    # All three or none: TLS on the proxy port with mandatory, verified client certificates.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    tls_reload_interval: float = 60.0
    # The live-inventory listener (sidecar/inventory.py): its port, and the PEM file of the API's
    # Ed25519 public key(s) that enables it (empty = no listener). Needs MCP_SERVER_NAMESPACE/NAME.
    inventory_port: int = 8099
    inventory_public_keys_file: str = ""
    # `auth.mode: platform`: the `iss` of the API's agent tokens and where its JWKS is fetched
    # (default: the issuer's /.well-known/jwks.json; in a cluster, the API's in-cluster address).
    platform_token_issuer: str = ""
    platform_jwks_url: str = ""
    # Origin/Host validation (sidecar/origin.py): extra names besides loopback and EXTERNAL_BASE_URL's.
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # Approvals (sidecar/approval.py): the API's base URL, and the per-gateway credential presented
    # to it (APPROVALS_CREDENTIAL, else the ingest credential ANALYTICS_API_KEY: the same sgw1 key).
    approvals_api_url: str = ""
    approvals_credential: str = ""

    @property
    def tls_enabled(self) -> bool:
        """Whether the proxy port terminates TLS (and so can see a client certificate)."""
        return bool(self.tls_cert_file)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SidecarSettings:
        """Build settings from an environment mapping; raises `SettingsError` on unusable values."""

        def s(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        upstream = s("UPSTREAM_URL", cls.upstream_url)
        up = urlsplit(upstream)
        if up.scheme not in ("http", "https") or not up.netloc:
            raise SettingsError(f"UPSTREAM_URL must be an absolute http(s) URL, got {upstream!r}")
        client = s("UPSTREAM_CLIENT", cls.upstream_client).lower()
        if client not in ("fast", "aiohttp"):
            raise SettingsError(f"UPSTREAM_CLIENT must be 'fast' or 'aiohttp', got {client!r}")
        tls = (s("TLS_CERT_FILE", ""), s("TLS_KEY_FILE", ""), s("TLS_CLIENT_CA_FILE", ""))
        if any(tls) and not all(tls):
            raise SettingsError("TLS_CERT_FILE, TLS_KEY_FILE and TLS_CLIENT_CA_FILE must be set together "
                                "(the proxy port always verifies client certificates)")
        proxy_id = s("TRUSTED_PROXY_SPIFFE_ID", "")
        if proxy_id and not proxy_id.lower().startswith("spiffe://"):
            raise SettingsError(f"TRUSTED_PROXY_SPIFFE_ID must be a spiffe:// URI, got {proxy_id!r}")
        if env.get("INVENTORY_TOKEN", "").strip():
            raise SettingsError("INVENTORY_TOKEN (one shared secret for every server) is no longer accepted: "
                                "set INVENTORY_PUBLIC_KEYS_FILE to the API's inventory public key instead")
        keys_file = s("INVENTORY_PUBLIC_KEYS_FILE", "")
        if keys_file and not (s("MCP_SERVER_NAMESPACE", "") and s("MCP_SERVER_NAME", "")):
            raise SettingsError("INVENTORY_PUBLIC_KEYS_FILE needs MCP_SERVER_NAMESPACE and MCP_SERVER_NAME: "
                                "inventory tokens are bound to one server")
        issuer = _http_url("PLATFORM_TOKEN_ISSUER", env.get("PLATFORM_TOKEN_ISSUER", "")).rstrip("/")
        jwks = _http_url("PLATFORM_JWKS_URL", env.get("PLATFORM_JWKS_URL", ""))
        if jwks and not issuer:
            raise SettingsError("PLATFORM_JWKS_URL needs PLATFORM_TOKEN_ISSUER (the tokens' iss)")
        prefix = s("STRIP_PREFIX", "").rstrip("/")
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        return cls(
            port=_int(env, "PORT", cls.port),
            metrics_port=_int(env, "METRICS_PORT", cls.metrics_port),
            host=s("LISTEN_HOST", cls.host),
            upstream_url=upstream.rstrip("/"),
            policy_file=s("POLICY_FILE", ""),
            server_name=s("MCP_SERVER_NAME", ""),
            server_namespace=s("MCP_SERVER_NAMESPACE", ""),
            cluster_name=s("MCP_CLUSTER_NAME", ""),
            human_id_header=s("HUMAN_ID_HEADER", cls.human_id_header),
            agent_id_header=s("AGENT_ID_HEADER", cls.agent_id_header),
            team_id_header=s("TEAM_ID_HEADER", cls.team_id_header),
            session_id_header=s("SESSION_ID_HEADER", cls.session_id_header),
            policy_mode=s("POLICY_MODE", cls.policy_mode),
            default_decision=s("POLICY_DEFAULT_DECISION", cls.default_decision),
            policy_version=s("POLICY_VERSION", cls.policy_version),
            analytics_ingest_url=s("ANALYTICS_INGEST_URL", ""),
            analytics_api_key=s("ANALYTICS_API_KEY", ""),
            analytics_source=s("ANALYTICS_SOURCE", cls.analytics_source),
            analytics_event_type=s("ANALYTICS_EVENT_TYPE", cls.analytics_event_type),
            strip_prefix=prefix,
            external_base_url=_external_base(env.get("EXTERNAL_BASE_URL", "")),
            audit_spool_dir=s("AUDIT_SPOOL_DIR", ""),
            audit_spool_max_bytes=_int(env, "AUDIT_SPOOL_MAX_BYTES", cls.audit_spool_max_bytes),
            audit_batch_size=max(1, _int(env, "AUDIT_BATCH_SIZE", cls.audit_batch_size)),
            policy_poll_interval=max(0.05, _float(env, "POLICY_POLL_INTERVAL", cls.policy_poll_interval)),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes),
            forward_bearer_token=s("FORWARD_BEARER_TOKEN", "false").lower() in ("1", "true", "yes"),
            otel_endpoint=s("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            otel_service_name=s("OTEL_SERVICE_NAME", cls.otel_service_name),
            upstream_client=client,
            verified_spiffe_header=s("VERIFIED_SPIFFE_HEADER", cls.verified_spiffe_header),
            trusted_proxy_spiffe_id=proxy_id,
            tls_cert_file=tls[0],
            tls_key_file=tls[1],
            tls_client_ca_file=tls[2],
            tls_reload_interval=max(0.05, _float(env, "TLS_RELOAD_INTERVAL", cls.tls_reload_interval)),
            inventory_port=_int(env, "INVENTORY_PORT", cls.inventory_port),
            inventory_public_keys_file=keys_file,
            platform_token_issuer=issuer,
            approvals_api_url=_http_url("APPROVALS_API_URL", env.get("APPROVALS_API_URL", "")).rstrip("/"),
            approvals_credential=s("APPROVALS_CREDENTIAL", "") or s("ANALYTICS_API_KEY", ""),
            platform_jwks_url=jwks or (f"{issuer}/.well-known/jwks.json" if issuer else ""),
            **_origin_settings(env),
        )
