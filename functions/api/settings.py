"""API settings, read once from the environment (same names locally and in production)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions.api.agent_tokens import DEFAULT_TTL, MAX_TTL, AgentTokenIssuer, parse_keys
from functions.api.inventory import DEFAULT_URL_TEMPLATE, check_template, client_tls
from mcp_sentinel.client_address import Network, parse_networks
from mcp_sentinel.env import SettingsError, flag, integer, items, number, text
from mcp_sentinel.identity.passwords import HashParams
from mcp_sentinel.identity.tokens import KeyRing
from mcp_sentinel.inventory_token import load_signing_key


def _csv(environ: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(items(environ, name))


@dataclass(frozen=True)
class ApiSettings:
    """Everything the API function reads from its environment."""

    host: str = "0.0.0.0"
    port: int = 8080
    metrics_port: int = 9090
    api_keys: frozenset[str] = frozenset()
    admin_api_keys: frozenset[str] = frozenset()
    ingest_api_keys: frozenset[str] = frozenset()
    admin_users: frozenset[str] = frozenset()
    # Self-service accounts (password signup, first OIDC sign-in of an unknown email). Off unless
    # set: outside the local stack admins create or invite users (`POST /api/users`).
    signup_enabled: bool = False
    jwt_keys: str = ""
    jwt_secret: str = ""
    access_token_ttl: int = 900
    postgres_dsn: str = ""
    db_startup_timeout: float = 90.0
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""
    dev_login_enabled: bool = False
    dev_user_email: str = "test@mcpruntime.org"
    dev_user_password: str = "test@123"
    dev_admin_email: str = "admin@mcpruntime.org"
    dev_admin_password: str = "admin@123"
    admin_email: str = ""
    admin_password: str = ""
    hash_params: HashParams = HashParams()
    # Runtime governance and analytics backends (each optional; their routes answer 503 without one).
    clickhouse_url: str = ""
    clickhouse_db: str = "mcp"
    kube_environ: tuple[tuple[str, str], ...] = ()
    temporal_address: str = ""
    temporal_namespace: str = "default"
    # False where another controller owns the server lifecycle (the local stack's reconciler): the
    # API then does not signal the ServerLifecycle workflow on server changes.
    server_lifecycle_workflow: bool = True
    provisioning_wait_seconds: float = 30.0
    policy_output_dir: str = ""
    prometheus_url: str = ""
    cluster_name: str = "local"
    platform_mode: str = "tenant"
    active_server_limit: int = 5
    push_cooldown_seconds: float = 0.0
    # Proxies (the UI, an ingress) whose X-Forwarded-For names the real client for lockout and audit.
    trusted_proxies: tuple[Network, ...] = ()
    # `/api/runtime/components`: "kubernetes" (platform Deployments/Knative Services) or "local"
    # (the local stack's processes, found through SENTINEL_RUN_DIR and SENTINEL_STACK_PORTS).
    components_backend: str = "kubernetes"
    sentinel_run_dir: str = ""
    stack_ports: str = ""
    # Live inventory of `/api/runtime/servers` (functions/api/inventory.py): where each MCP server
    # is probed (placeholders {name} {namespace} {port} {gatewayPort} {inventoryPort} {path}; empty
    # disables probing), the Ed25519 key that signs each probe's per-server token (the sidecars hold
    # its public key; mcp_sentinel/inventory_token.py), the per-server timeout, how many probes run
    # at once and how long a result is reused.
    inventory_url_template: str = DEFAULT_URL_TEMPLATE
    inventory_signing_key_file: str = ""
    # Approvals (functions/api/routes/approvals.py): the secrets that sign gateway credentials
    # (INGEST_GATEWAY_SECRET, comma list for rotation; the gateways present theirs to ask for
    # approvals) and the dashboard's public URL for the approval link the gateway hands the caller.
    gateway_secrets: tuple[str, ...] = ()
    approvals_ui_url: str = ""
    # For gateways serving TLS with client certificates (sidecar mTLS mode): the API's client
    # certificate and key, and the CA that signed the gateways' server certificates.
    inventory_tls_cert_file: str = ""
    inventory_tls_key_file: str = ""
    inventory_tls_ca_file: str = ""
    inventory_timeout_seconds: float = 3.0
    inventory_concurrency: int = 8
    inventory_cache_seconds: float = 30.0
    # Platform agent tokens (functions/api/agent_tokens.py): signing keys `kid=/path.pem,...` (the
    # last signs), the tokens' `iss` (this API's public URL, e.g. https://host/api), their lifetime,
    # and the public base URL servers are reached at (https://host): a server's canonical resource
    # URL, the audience of its tokens, is that base + its public path (`/<server>/mcp`).
    agent_token_keys: str = ""
    agent_token_issuer: str = ""
    agent_token_ttl: int = DEFAULT_TTL
    public_base_url: str = ""

    def __post_init__(self) -> None:
        if bool(self.oidc_issuer) != bool(self.oidc_audience):
            raise SettingsError("OIDC_ISSUER and OIDC_AUDIENCE must be set together")
        if self.platform_mode not in ("tenant", "org", "public"):
            raise SettingsError(f"PLATFORM_MODE must be tenant, org or public, got {self.platform_mode!r}")
        if self.oidc_jwks_url and not self.oidc_issuer:
            raise SettingsError("OIDC_JWKS_URL needs OIDC_ISSUER and OIDC_AUDIENCE")
        if self.components_backend not in ("kubernetes", "local"):
            raise SettingsError(f"COMPONENTS_BACKEND must be kubernetes or local, got {self.components_backend!r}")
        if self.components_backend == "local" and not self.sentinel_run_dir:
            raise SettingsError("COMPONENTS_BACKEND=local needs SENTINEL_RUN_DIR (the local stack's run folder)")
        check_template(self.inventory_url_template)
        if not self.inventory_timeout_seconds > 0:
            raise SettingsError("MCP_INVENTORY_TIMEOUT_SECONDS must be positive")
        if self.inventory_concurrency < 1:
            raise SettingsError("MCP_INVENTORY_CONCURRENCY must be at least 1")
        if self.inventory_cache_seconds < 0:
            raise SettingsError("MCP_INVENTORY_CACHE_SECONDS must not be negative")
        if bool(self.inventory_tls_cert_file) != bool(self.inventory_tls_key_file):
            raise SettingsError("MCP_INVENTORY_TLS_CERT_FILE and MCP_INVENTORY_TLS_KEY_FILE must be set together")
        client_tls(self.inventory_tls_cert_file, self.inventory_tls_key_file, self.inventory_tls_ca_file)
        if self.inventory_signing_key_file:
            load_signing_key(self.inventory_signing_key_file)  # fail at start-up on a missing or wrong key
        self.key_ring()  # fail at start-up on malformed or short JWT keys
        if bool(self.agent_token_keys) != bool(self.agent_token_issuer):
            raise SettingsError("AGENT_TOKEN_KEYS and AGENT_TOKEN_ISSUER must be set together")
        if not 60 <= self.agent_token_ttl <= MAX_TTL:
            raise SettingsError(f"AGENT_TOKEN_TTL_SECONDS must be between 60 and {MAX_TTL}")
        for name, url in (("AGENT_TOKEN_ISSUER", self.agent_token_issuer), ("MCP_PUBLIC_BASE_URL",
                                                                            self.public_base_url)):
            if url and (not url.startswith(("https://", "http://")) or "?" in url or "#" in url):
                raise SettingsError(f"{name} must be an absolute http(s) URL without query, got {url!r}")
        self.agent_tokens()  # fail at start-up on unreadable or unsuitable signing keys

    def agent_tokens(self) -> AgentTokenIssuer | None:
        """The platform token issuer, or None when AGENT_TOKEN_KEYS is not set."""
        if not self.agent_token_keys:
            return None
        keys = parse_keys(self.agent_token_keys)
        if not keys:
            raise SettingsError("AGENT_TOKEN_KEYS names no key")
        return AgentTokenIssuer(self.agent_token_issuer, keys, self.agent_token_ttl)

    def key_ring(self) -> KeyRing | None:
        """The JWT key ring, or None when neither JWT_KEYS nor JWT_SECRET is set."""
        if not self.jwt_keys and not self.jwt_secret:
            return None
        return KeyRing.parse(self.jwt_keys, self.jwt_secret)

    @property
    def oidc_enabled(self) -> bool:
        """True when OIDC ID tokens are accepted."""
        return bool(self.oidc_issuer)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ApiSettings:
        """Build from an environment mapping (raises SettingsError with the variable name on bad values)."""
        d = cls()
        e = environ
        if e.get("MCP_INVENTORY_TOKEN", "").strip():
            raise SettingsError("MCP_INVENTORY_TOKEN (one secret shared with every gateway) is no longer accepted: "
                             "set MCP_INVENTORY_SIGNING_KEY_FILE (an Ed25519 private key; gateways get its public key)")

        return cls(
            host=e.get("HOST", d.host),
            port=integer(e, "PORT", d.port, minimum=0, maximum=65535),
            metrics_port=integer(e, "METRICS_PORT", d.metrics_port, minimum=0, maximum=65535),
            api_keys=_csv(e, "API_KEYS"),
            admin_api_keys=_csv(e, "ADMIN_API_KEYS"),
            ingest_api_keys=_csv(e, "INGEST_API_KEYS"),
            admin_users=frozenset(u.lower() for u in _csv(e, "ADMIN_USERS")),
            signup_enabled=flag(e, "SIGNUP_ENABLED"),
            jwt_keys=e.get("JWT_KEYS", ""),
            jwt_secret=e.get("JWT_SECRET", ""),
            access_token_ttl=integer(e, "ACCESS_TOKEN_TTL_SECONDS", d.access_token_ttl, minimum=1),
            postgres_dsn=e.get("POSTGRES_DSN") or e.get("DATABASE_URL", ""),
            db_startup_timeout=number(e, "PLATFORM_DB_STARTUP_TIMEOUT", d.db_startup_timeout),
            oidc_issuer=e.get("OIDC_ISSUER", "").rstrip("/"),
            oidc_audience=e.get("OIDC_AUDIENCE", ""),
            oidc_jwks_url=e.get("OIDC_JWKS_URL", ""),
            dev_login_enabled=flag(e, "PLATFORM_DEV_LOGIN_ENABLED"),
            dev_user_email=e.get("PLATFORM_DEV_USER_EMAIL", d.dev_user_email),
            dev_user_password=e.get("PLATFORM_DEV_USER_PASSWORD", d.dev_user_password),
            dev_admin_email=e.get("PLATFORM_DEV_ADMIN_EMAIL", d.dev_admin_email),
            dev_admin_password=e.get("PLATFORM_DEV_ADMIN_PASSWORD", d.dev_admin_password),
            admin_email=e.get("PLATFORM_ADMIN_EMAIL", ""),
            admin_password=e.get("PLATFORM_ADMIN_PASSWORD", ""),
            hash_params=HashParams(
                time_cost=integer(e, "PASSWORD_HASH_TIME_COST", d.hash_params.time_cost, minimum=1),
                memory_cost_kib=integer(e, "PASSWORD_HASH_MEMORY_KIB", d.hash_params.memory_cost_kib, minimum=1),
                parallelism=integer(e, "PASSWORD_HASH_PARALLELISM", d.hash_params.parallelism, minimum=1),
            ),
            clickhouse_url=e.get("CLICKHOUSE_URL", ""),
            clickhouse_db=e.get("CLICKHOUSE_DB", d.clickhouse_db) or d.clickhouse_db,
            kube_environ=tuple(
                (k, e[k])
                for k in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "HOME")
                if e.get(k)
            ),
            temporal_address=e.get("TEMPORAL_ADDRESS", ""),
            gateway_secrets=tuple(items(e, "INGEST_GATEWAY_SECRET")),
            approvals_ui_url=text(e, "APPROVALS_UI_URL").rstrip("/"),
            provisioning_wait_seconds=number(e, "PROVISIONING_WAIT_SECONDS", d.provisioning_wait_seconds),
            temporal_namespace=e.get("TEMPORAL_NAMESPACE", d.temporal_namespace) or d.temporal_namespace,
            server_lifecycle_workflow=flag(e, "SERVER_LIFECYCLE_WORKFLOW", True),
            policy_output_dir=e.get("POLICY_OUTPUT_DIR", ""),
            prometheus_url=e.get("PROMETHEUS_URL", "").rstrip("/"),
            cluster_name=e.get("MCP_CLUSTER_NAME", d.cluster_name) or d.cluster_name,
            platform_mode=(e.get("PLATFORM_MODE", d.platform_mode) or d.platform_mode).strip().lower(),
            active_server_limit=integer(e, "PLATFORM_MCP_ACTIVE_SERVER_LIMIT", d.active_server_limit, minimum=0),
            push_cooldown_seconds=number(e, "PLATFORM_MCP_PUSH_COOLDOWN_SECONDS", d.push_cooldown_seconds),
            trusted_proxies=parse_networks("TRUSTED_PROXIES", e.get("TRUSTED_PROXIES")),
            components_backend=(e.get("COMPONENTS_BACKEND", "") or d.components_backend).strip().lower(),
            sentinel_run_dir=e.get("SENTINEL_RUN_DIR", ""),
            stack_ports=e.get("SENTINEL_STACK_PORTS", ""),
            inventory_url_template=e.get("MCP_INVENTORY_URL_TEMPLATE", d.inventory_url_template).strip(),
            inventory_signing_key_file=e.get("MCP_INVENTORY_SIGNING_KEY_FILE", "").strip(),
            inventory_tls_cert_file=e.get("MCP_INVENTORY_TLS_CERT_FILE", "").strip(),
            inventory_tls_key_file=e.get("MCP_INVENTORY_TLS_KEY_FILE", "").strip(),
            inventory_tls_ca_file=e.get("MCP_INVENTORY_TLS_CA_FILE", "").strip(),
            inventory_timeout_seconds=number(e, "MCP_INVENTORY_TIMEOUT_SECONDS", d.inventory_timeout_seconds),
            inventory_concurrency=integer(e, "MCP_INVENTORY_CONCURRENCY", d.inventory_concurrency),
            inventory_cache_seconds=number(e, "MCP_INVENTORY_CACHE_SECONDS", d.inventory_cache_seconds),
            agent_token_keys=e.get("AGENT_TOKEN_KEYS", "").strip(),
            agent_token_issuer=e.get("AGENT_TOKEN_ISSUER", "").strip().rstrip("/"),
            agent_token_ttl=integer(e, "AGENT_TOKEN_TTL_SECONDS", d.agent_token_ttl),
            public_base_url=e.get("MCP_PUBLIC_BASE_URL", "").strip().rstrip("/"),
        )
