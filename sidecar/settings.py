"""Sidecar settings, read once from the environment (names as upstream §4.1 plus AUDIT_*)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mcp_sentinel.env import SettingsError as SettingsError
from mcp_sentinel.env import base_url, flag, http_url, integer, number, text
from sidecar.origin import OriginConfigError, OriginGuard, split_list


def _origin_settings(env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    hosts, origins = split_list(env.get("ALLOWED_HOSTS", "")), split_list(env.get("ALLOWED_ORIGINS", ""))
    try:
        OriginGuard(hosts, origins, base_url(env, "EXTERNAL_BASE_URL"))
    except OriginConfigError as exc:
        raise SettingsError(str(exc)) from None
    return {"allowed_hosts": hosts, "allowed_origins": origins}


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
    # Pinned tool definitions (sidecar/pins.py): how often the gateway lists the upstream's tools
    # itself while pinning is on, and the upstream path it lists at.
    pin_refresh_seconds: float = 30.0
    pin_refresh_path: str = "/mcp"
    # Quotas (sidecar/quota.py): how many replicas serve this server (each enforces ceil(limit/replicas);
    # the server lifecycle renderer sets it from spec.replicas) and the cap on live counters.
    quota_replicas: int = 1
    quota_max_counters: int = 1_000_000
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
            return text(env, name, default)

        upstream = http_url(env, "UPSTREAM_URL", cls.upstream_url)
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
        issuer = http_url(env, "PLATFORM_TOKEN_ISSUER").rstrip("/")
        jwks = http_url(env, "PLATFORM_JWKS_URL")
        if jwks and not issuer:
            raise SettingsError("PLATFORM_JWKS_URL needs PLATFORM_TOKEN_ISSUER (the tokens' iss)")
        prefix = s("STRIP_PREFIX", "").rstrip("/")
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        replicas = integer(env, "QUOTA_REPLICAS", cls.quota_replicas, minimum=1)
        max_counters = integer(env, "QUOTA_MAX_COUNTERS", cls.quota_max_counters, minimum=1)
        return cls(
            port=integer(env, "PORT", cls.port, minimum=0, maximum=65535),
            metrics_port=integer(env, "METRICS_PORT", cls.metrics_port, minimum=0, maximum=65535),
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
            external_base_url=base_url(env, "EXTERNAL_BASE_URL"),
            audit_spool_dir=s("AUDIT_SPOOL_DIR", ""),
            audit_spool_max_bytes=integer(env, "AUDIT_SPOOL_MAX_BYTES", cls.audit_spool_max_bytes, minimum=0),
            audit_batch_size=integer(env, "AUDIT_BATCH_SIZE", cls.audit_batch_size, minimum=1),
            policy_poll_interval=number(env, "POLICY_POLL_INTERVAL", cls.policy_poll_interval, minimum=0.05),
            max_body_bytes=integer(env, "MAX_BODY_BYTES", cls.max_body_bytes, minimum=1),
            forward_bearer_token=flag(env, "FORWARD_BEARER_TOKEN"),
            otel_endpoint=s("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            otel_service_name=s("OTEL_SERVICE_NAME", cls.otel_service_name),
            upstream_client=client,
            verified_spiffe_header=s("VERIFIED_SPIFFE_HEADER", cls.verified_spiffe_header),
            trusted_proxy_spiffe_id=proxy_id,
            tls_cert_file=tls[0],
            tls_key_file=tls[1],
            tls_client_ca_file=tls[2],
            tls_reload_interval=number(env, "TLS_RELOAD_INTERVAL", cls.tls_reload_interval, minimum=0.05),
            inventory_port=integer(env, "INVENTORY_PORT", cls.inventory_port, minimum=0, maximum=65535),
            inventory_public_keys_file=keys_file,
            platform_token_issuer=issuer,
            approvals_api_url=http_url(env, "APPROVALS_API_URL").rstrip("/"),
            approvals_credential=s("APPROVALS_CREDENTIAL", "") or s("ANALYTICS_API_KEY", ""),
            platform_jwks_url=jwks or (f"{issuer}/.well-known/jwks.json" if issuer else ""),
            pin_refresh_seconds=number(env, "PIN_REFRESH_SECONDS", cls.pin_refresh_seconds, minimum=0.5),
            pin_refresh_path="/" + s("PIN_REFRESH_PATH", cls.pin_refresh_path).lstrip("/"),
            quota_replicas=replicas,
            quota_max_counters=max_counters,
            **_origin_settings(env),
        )
