"""The `api` part: `python -m functions.api` wired to the local Postgres, with local test logins."""

from __future__ import annotations

import os
from pathlib import Path

from localstack.config import StackConfig
from localstack.parts.postgres import postgres_dsn
from localstack.status import stack_env
from localstack.supervisor import PYTHON, Component
from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG


def inventory_url_template(cfg: StackConfig) -> str:
    """Where the local API probes an MCPServer's live inventory: `spec.port` on the stack's host."""
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return f"http://{host}:{{port}}{{path}}"


def dev_agent_key(cfg: StackConfig) -> Path:
    """The local stack's platform-token signing key: generated once into the data folder, local only.

    A cluster mounts its keys from a Secret (AGENT_TOKEN_KEYS); nothing outside `sentinel up` uses this one.
    """
    path = cfg.path("keys", "agent-token-dev.pem")
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    return path


def platform_token_env(cfg: StackConfig) -> dict[str, str]:
    """What the local sidecars need to verify platform tokens (the API's iss and its JWKS)."""
    return {
        "PLATFORM_TOKEN_ISSUER": cfg.url("front_door", "/api"),
        "PLATFORM_JWKS_URL": cfg.url("api", "/api/.well-known/jwks.json"),
    }


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
        # Servers are reconciled by the `reconciler` part here, not by the ServerLifecycle workflow.
        "SERVER_LIFECYCLE_WORKFLOW": "false",
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
        # Platform agent tokens: a dev key generated into the data folder; servers are public at the front door.
        "AGENT_TOKEN_KEYS": f"local-dev={dev_agent_key(cfg)}",
        "AGENT_TOKEN_ISSUER": platform_token_env(cfg)["PLATFORM_TOKEN_ISSUER"],
        "MCP_PUBLIC_BASE_URL": cfg.url("front_door"),
        # Approvals: the sidecars ask with their own gateway credentials; the link names the dashboard.
        "INGEST_GATEWAY_SECRET": cfg.ingest_gateway_secret,
        "APPROVALS_UI_URL": cfg.url("front_door"),
        **stack_env(cfg),
    }


def components(cfg: StackConfig) -> list[Component]:
    """The API function (needs the `postgres` part)."""
    return [
        Component(
            name="api",
            argv=[PYTHON, "-m", "localstack.api"],
            env=api_env(cfg),
            health_url=cfg.url("api", "/ready"),
            startup_timeout=60.0,
            description=f"(platform API, {cfg.url('api')})",
        )
    ]
