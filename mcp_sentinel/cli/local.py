"""Commands about the local stack's processes: `status` and `logs`."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from localstack.config import StackConfig
from localstack.supervisor import Component
from mcp_sentinel.cli.client import CliError
from mcp_sentinel.cli.output import emit_json, table


def component_status(cfg: StackConfig, components: list[Component]) -> list[dict[str, Any]]:
    """One row per component: running (pid file + live process) and healthy.

    Uses the same side-effect-free probes as the API's operations page: a component's own start-up
    check may do work (the `kube` one installs CRDs and seeds the demo), a status query must not.
    """
    from localstack.status import local_status

    return [
        {"name": st.name, "state": st.state, "pid": st.pid, "health": st.probe, "uptime_seconds": st.uptime_seconds}
        for st in local_status(cfg, components)
    ]


def cmd_status(args: argparse.Namespace, cfg: StackConfig) -> int:
    """Health of each local component from the component table; exit 1 unless all are healthy."""
    from localstack.components import local_stack

    only = set(args.only.split(",")) if args.only else None
    rows = component_status(cfg, local_stack(cfg, only))
    if args.json:
        emit_json(rows)
    else:
        table(rows, ["name", "state", "pid", "health"], empty="no components (check --only)")
    return 0 if rows and all(r["state"] == "healthy" for r in rows) else 1


def tail_lines(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a file, reading only its end."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        block = min(size, max(4096, lines * 400))
        while True:
            fh.seek(size - block)
            data = fh.read()
            if data.count(b"\n") > lines or block == size:
                break
            block = min(size, block * 2)
    text = data.decode(errors="replace").splitlines()
    return text[-lines:] if lines else []


def cmd_logs(args: argparse.Namespace, cfg: StackConfig) -> int:
    """Print (and with -f, follow) one component's log from `<data>/logs`."""
    log_dir = cfg.path("logs")
    path = log_dir / f"{args.component}.log"
    if not path.is_file():
        known = sorted(p.stem for p in log_dir.glob("*.log")) if log_dir.is_dir() else []
        hint = f"known: {', '.join(known)}" if known else f"no logs in {log_dir} yet (has the stack been started?)"
        raise CliError(f"no log for component {args.component!r}; {hint}", exit_code=2)
    for line in tail_lines(path, args.lines):
        print(line)
    if args.follow:
        with path.open("rb") as fh, contextlib.suppress(KeyboardInterrupt):
            fh.seek(0, os.SEEK_END)
            while True:
                chunk = fh.readline()
                if chunk:
                    print(chunk.decode(errors="replace").rstrip("\n"), flush=True)
                else:
                    time.sleep(0.25)
    return 0
