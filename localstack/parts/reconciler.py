"""The `reconciler` part: MCPServers registered at run time become sidecars behind the front door.

See localstack/reconciler. Needs `kube` (the objects), and for the sidecars it starts:
`api` (platform-token JWKS, policy rendering shares its code), `ingest` (audit) and `front_door`
(routes; it may start later: it reads the route table whenever it changes).
"""

from __future__ import annotations

from localstack.config import StackConfig
from localstack.parts.api import platform_token_env
from localstack.parts.front_door import SIDECARS, routes_file
from localstack.supervisor import PYTHON, Component
from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG


def reconciler_env(cfg: StackConfig) -> dict[str, str]:
    """The reconciler's environment (what it passes on to each sidecar is in its loop module)."""
    return {
        "KUBECONFIG": str(cfg.kubeconfig),
        "SENTINEL_DATA_DIR": str(cfg.data_dir),
        "MCP_ROUTES_FILE": str(routes_file(cfg)),
        # The API renders into the same folder; both write byte-identical text (one renderer).
        "POLICY_OUTPUT_DIR": str(cfg.path("policies")),
        "MCP_PUBLIC_BASE_URL": cfg.url("front_door"),
        "ANALYTICS_INGEST_URL": cfg.url("ingest"),
        "GATEWAY_CREDENTIAL_SECRET": cfg.ingest_gateway_secret,
        "METRICS_PORT": str(cfg.ports.reconciler_metrics),
        "LISTEN_HOST": cfg.host,
        "DEFAULT_TEAM": cfg.namespace_team,
        # The seeded servers have their own fixed sidecars (the `sidecars` part).
        "STATIC_SERVERS": ",".join(f"{cfg.namespace}/{name}" for name in SIDECARS),
        LOCAL_DEV_FLAG: "1",
        **platform_token_env(cfg),
    }


def components(cfg: StackConfig) -> list[Component]:
    """The reconciler process, healthy once its first full relist is done."""
    return [
        Component(
            name="reconciler",
            argv=[PYTHON, "-m", "localstack.reconciler"],
            env=reconciler_env(cfg),
            health_url=cfg.url("reconciler_metrics", "/metrics"),
            startup_timeout=60.0,
            description="(MCPServers by URL -> sidecar + front-door route)",
        )
    ]
