"""The demo `sentinel up` runs once the stack is healthy: real calls, printed outcomes."""

from __future__ import annotations

from collections.abc import Callable

from mcp_sentinel.stack.config import StackConfig


def run_demo(cfg: StackConfig, echo: Callable[[str], None]) -> None:
    """Make a few governed tool calls through the sidecars and print what happened."""
    echo(f"data folder: {cfg.data_dir}")
