"""The local stack's component table, in start order.

Each concern owns one module in `localstack.parts` exposing
`components(cfg: StackConfig) -> list[Component]`; this file only fixes the order.
"""

from __future__ import annotations

import importlib

from localstack.config import StackConfig
from localstack.supervisor import Component

# Infrastructure first, then the functions that depend on it, then the edge.
PART_ORDER = (
    "s3",
    "kafka",
    "clickhouse",
    "postgres",
    "kube",
    "temporal",
    "sample_mcp",
    "ingest",
    "processor",
    "dispatcher",
    "api",
    "worker",
    "sidecars",
    "reconciler",
    "ui",
    "front_door",
    "prometheus",
)


def local_stack(cfg: StackConfig, only: set[str] | None = None) -> list[Component]:
    """Every component of the local stack (or of the named parts), in start order."""
    comps: list[Component] = []
    for part in PART_ORDER:
        if only is not None and part not in only:
            continue
        try:
            module = importlib.import_module(f"localstack.parts.{part}")
        except ModuleNotFoundError as exc:
            if exc.name == f"localstack.parts.{part}":
                continue  # that part is not built yet
            raise
        comps.extend(module.components(cfg))
    return comps
