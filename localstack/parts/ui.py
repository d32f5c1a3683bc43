"""The `ui` part: `python -m functions.ui` proxying `/api/*` to the local API."""

from __future__ import annotations

from localstack.config import StackConfig
from localstack.supervisor import PYTHON, Component
from mcp_sentinel.secrets_check import LOCAL_DEV_FLAG


def ui_env(cfg: StackConfig) -> dict[str, str]:
    """Environment of the local UI process (the same variable names production uses)."""
    return {
        "HOST": cfg.host,
        "PORT": str(cfg.ports.ui),
        "API_UPSTREAM": cfg.url("api"),
        "ADMIN_API_KEYS": cfg.admin_api_key,
        # Sessions survive UI restarts; the cookie-signing secret is generated once beside them.
        "UI_SESSION_DIR": str(cfg.path("ui", "sessions")),
        # The front door (loopback) is the only proxy in front of the UI locally.
        "UI_TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
        "UI_FRONT_DOOR_URL": cfg.url("front_door"),
        "UI_DEFAULT_NAMESPACE": cfg.namespace,
        # The local stack runs with its published keys (mcp_sentinel/secrets_check.py).
        LOCAL_DEV_FLAG: "1",
    }


def components(cfg: StackConfig) -> list[Component]:
    """The UI function."""
    return [
        Component(
            name="ui",
            argv=[PYTHON, "-m", "functions.ui"],
            env=ui_env(cfg),
            health_url=cfg.url("ui", "/health"),
            startup_timeout=60.0,
            description=f"(dashboard, {cfg.url('ui')}; open {cfg.url('front_door')})",
        )
    ]
