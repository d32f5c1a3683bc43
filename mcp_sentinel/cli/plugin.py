"""What an environment may add to the `sentinel` CLI: the local stack plugs in here.

The product CLI talks to an API and a cluster. Commands about processes on this machine (`up`,
`down`, local `status`/`logs`) and the local defaults (API URL, admin key, policy files) come from
a plugin registered under the `mcp_sentinel.cli` entry-point group; `localstack` registers one.
Images do not ship `localstack`, so there the plugin fails to import and the CLI runs without it.
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol


class CliPlugin(Protocol):
    """Local commands and defaults (see module docstring)."""

    def add_commands(self, sub: Any, common: argparse.ArgumentParser) -> None:
        """Register extra subcommands (each sets `func(args) -> int`)."""

    def api_url(self) -> str:
        """The API base URL when neither --api-url nor SENTINEL_API_URL is given."""

    def api_key(self) -> str:
        """The admin key when neither --api-key nor SENTINEL_API_KEY is given."""

    def status(self, args: argparse.Namespace) -> int:
        """`sentinel status` without --kube."""

    def logs(self, args: argparse.Namespace) -> int:
        """`sentinel logs` without --kube."""

    def policy_file(self, server: str, namespace: str) -> Path | None:
        """Where a server's rendered policy is written on this machine, if anywhere."""


GROUP = "mcp_sentinel.cli"


def discover() -> CliPlugin | None:
    """The first installed plugin that imports, or None (an image without the local stack)."""
    for ep in entry_points(group=GROUP):
        try:
            factory = ep.load()
        except ImportError:
            continue
        plugin: CliPlugin = factory()
        return plugin
    return None
