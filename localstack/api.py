"""`python -m localstack.api`: the product API with the local stack's component table injected.

The operations page (`/api/runtime/components`, restart of `all`) needs to know which processes
the local supervisor runs; only the local stack knows that, so it supplies it here instead of the
API importing the local stack.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from localstack.config import StackConfig
from localstack.control import ControlDir
from localstack.status import load_components, stack_config, status_rows
from localstack.supervisor import Component


class StackComponents:
    """The local stack's processes for the API (functions.api.services.components.LocalComponents)."""

    def __init__(self, run_dir: str, ports_json: str) -> None:
        self.run_dir = run_dir
        self.ports_json = ports_json
        self._table: tuple[StackConfig, list[Component]] | None = None

    def _components(self) -> tuple[StackConfig, list[Component]]:
        if self._table is None:  # built on first use: the table is the same for the process's life
            cfg = stack_config(self.run_dir, self.ports_json)
            self._table = (cfg, load_components(cfg))
        return self._table

    def status(self, probe_seconds: float) -> list[dict[str, Any]]:
        """One row per component, probed side-effect free."""
        cfg, table = self._components()
        return [dict(r) for r in status_rows(cfg, table, probe_seconds)]

    def running(self) -> list[str]:
        """What the supervisor runs now."""
        return ControlDir(Path(self.run_dir)).components()


if __name__ == "__main__":
    from functions.api.__main__ import main

    main(local_components=StackComponents(os.environ.get("SENTINEL_RUN_DIR", ""),
                                          os.environ.get("SENTINEL_STACK_PORTS", "")))
