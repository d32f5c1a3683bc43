"""Local-stack part: the sample "workspace assistant" MCP server (the upstream both sidecars guard)."""

from __future__ import annotations

from localstack.config import StackConfig
from localstack.supervisor import PYTHON, Component


def components(cfg: StackConfig) -> list[Component]:
    """The sample MCP server on `ports.sample_mcp` (endpoint `/mcp`)."""
    return [
        Component(
            name="sample_mcp",
            argv=[
                PYTHON,
                "-m",
                "examples.workspace_assistant",
                "--host",
                cfg.host,
                "--port",
                str(cfg.ports.sample_mcp),
            ],
            health_port=cfg.ports.sample_mcp,
            startup_timeout=60.0,
            description=f"(workspace assistant MCP server, {cfg.url('sample_mcp', '/mcp')})",
        )
    ]
