"""The `api` part: `python -m functions.api` wired to the local Postgres, with local test logins."""

from __future__ import annotations

from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG
from mcp_sentinel.stack.config import StackConfig
from mcp_sentinel.stack.parts.postgres import postgres_dsn
from mcp_sentinel.stack.status import stack_env
from mcp_sentinel.stack.supervisor import PYTHON, Component


def inventory_url_template(cfg: StackConfig) -> str:
    """Where the local API probes an MCPServer's live inventory: `spec.port` on the stack's host."""
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return f"http://{host}:{{port}}{{path}}"


def api_env(cfg: StackConfig) -> dict[str, str]:
    """Environment of the local API process (the same variable names production uses)."""
    return {
        "HOST": cfg.host,
        "PORT": str(cfg.ports.api),
        "METRICS_PORT": str(cfg.ports.api_metrics),
        "POSTGRES_DSN": postgres_dsn(cfg),
        "ADMIN_API_KEYS": cfg.admin_api_key,
        "INGEST_API_KEYS": cfg.ingest_api_key,
        "JWT_SECRET": cfg.jwt_secret,
        "PLATFORM_DEV_LOGIN_ENABLED": "true",
        # Self-service signup for local use; production leaves it off (admins invite users).
        "SIGNUP_ENABLED": "true",
        # The local stack runs with its published keys (mcp_sentinel/secrets_check.py).
        LOCAL_DEV_FLAG: "1",
        "CLICKHOUSE_URL": cfg.url("clickhouse_http"),
        "KUBECONFIG": str(cfg.kubeconfig),
        "TEMPORAL_ADDRESS": f"{cfg.host}:{cfg.ports.temporal}",
        "POLICY_OUTPUT_DIR": str(cfg.path("policies")),
        "PROMETHEUS_URL": cfg.url("prometheus"),
        # The UI and the front door reach the API over loopback: their X-Forwarded-For names the
        # browser, so one client's failed logins lock only that client (not everyone via the UI).
        "TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
        # The operations page lists the processes `sentinel up` runs, not cluster Deployments.
        "COMPONENTS_BACKEND": "local",
        # Live inventory: there is no Service DNS locally; every MCP server listens on this host at
        # its spec.port (the demo servers' port is the sample server's, kube/seed.py).
        "MCP_INVENTORY_URL_TEMPLATE": inventory_url_template(cfg),
        # For a template through the sidecars' inventory listeners (the cluster default): they hold its public key.
        "MCP_INVENTORY_SIGNING_KEY_FILE": str(cfg.inventory_keys()[0]),
        **stack_env(cfg),
    }


def components(cfg: StackConfig) -> list[Component]:
    """The API function (needs the `postgres` part)."""
    return [
        Component(
            name="api",
            argv=[PYTHON, "-m", "functions.api"],
            env=api_env(cfg),
            health_url=cfg.url("api", "/ready"),
            startup_timeout=60.0,
            description=f"(platform API, {cfg.url('api')})",
        )
    ]
