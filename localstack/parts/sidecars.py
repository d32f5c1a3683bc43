"""Local-stack part: the enforcement sidecars for `server-a` and `server-b` in front of the sample server."""

from __future__ import annotations

import shutil
from pathlib import Path

from localstack.config import REPO_ROOT, StackConfig
from localstack.parts.api import platform_token_env
from localstack.supervisor import PYTHON, Component
from mcp_sentinel.gateway_credentials import GatewayBinding, issue
from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG

EXAMPLE_POLICIES = REPO_ROOT / "examples" / "policies"
SERVERS = (("server-a", "sidecar_a", "sidecar_a_metrics"), ("server-b", "sidecar_b", "sidecar_b_metrics"))


def seed_policy(cfg: StackConfig, server: str) -> Path:
    """The server's policy file, copied from examples/policies when the API has not rendered one yet."""
    path = cfg.policy_file(server, cfg.namespace)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EXAMPLE_POLICIES / f"{server}.json", path)
    return path


def gateway_credential(cfg: StackConfig, server: str) -> str:
    """The sidecar's own ingest key: it can write rows for this server only, attributed to the namespace's team."""
    return issue(cfg.ingest_gateway_secret, GatewayBinding(cfg.namespace, server, cfg.namespace_team))


def sidecar_env(cfg: StackConfig, server: str, port_name: str, metrics_port_name: str) -> dict[str, str]:
    """The environment one sidecar runs with (the same variable names as in a pod)."""
    return {
        "PORT": str(getattr(cfg.ports, port_name)),
        "METRICS_PORT": str(getattr(cfg.ports, metrics_port_name)),
        "LISTEN_HOST": cfg.host,
        "UPSTREAM_URL": cfg.url("sample_mcp"),
        "POLICY_FILE": str(cfg.policy_file(server, cfg.namespace)),
        "MCP_SERVER_NAME": server,
        "MCP_SERVER_NAMESPACE": cfg.namespace,
        "MCP_CLUSTER_NAME": "local",
        "ANALYTICS_INGEST_URL": cfg.url("ingest", "/events"),
        "ANALYTICS_API_KEY": gateway_credential(cfg, server),
        # Approvals are asked of the API with that same credential (sidecar/approval.py).
        "APPROVALS_API_URL": cfg.url("api"),
        "ANALYTICS_SOURCE": f"{server}-gateway",
        "AUDIT_SPOOL_DIR": str(cfg.path("spool", server)),
        "OTEL_SERVICE_NAME": f"{server}-gateway",
        # The live-inventory listener: only the API's signed, per-server tokens open it.
        "INVENTORY_PORT": str(getattr(cfg.ports, port_name + "_inventory")),
        "INVENTORY_PUBLIC_KEYS_FILE": str(cfg.inventory_keys()[1]),
        # The local stack runs with its published keys (mcp_sentinel/secrets_check.py).
        LOCAL_DEV_FLAG: "1",
        **platform_token_env(cfg),
    }


def components(cfg: StackConfig) -> list[Component]:
    """One sidecar per local server; ready once its policy is active."""
    out = []
    for server, port_name, metrics_name in SERVERS:
        seed_policy(cfg, server)
        out.append(
            Component(
                name=f"sidecar-{server}",
                argv=[PYTHON, "-m", "sidecar"],
                env=sidecar_env(cfg, server, port_name, metrics_name),
                health_url=cfg.url(port_name, "/.sentinel/ready"),
                startup_timeout=60.0,
                description=f"({server} gateway, {cfg.url(port_name, '/mcp')})",
            )
        )
    return out
