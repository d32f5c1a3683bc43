"""Stopping a local stack from another process (`sentinel down`): return only when every process is gone.

The supervisor starts each component in its own session, so a component is a process group whose
id is the pid in `<data>/run/<name>.pid`. `down` used to send SIGTERM and return at once: the API
(8080) and the broker gate (19092) were still listening a second later and an immediate `up`
failed with "address already in use". Now every group is sent SIGTERM (newest first, the reverse
of start order), `down` waits until no process of any group is left (zombies count as gone: they
hold no sockets), escalates to SIGKILL after a grace period and says which it had to kill. Pidfiles
are removed only once their group is gone, and `<run>/stopping` marks a `down` in progress, so
`up` can tell "still stopping" (wait) from "still running" (refuse).

Liveness is read from /proc (stdlib only; this module is imported by the CLI).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STOPPING = "stopping"  # marker file in the run folder while a `down` is in progress
UP_PID = "up.supervisor"  # the pid of a foreground `sentinel up` (not a component: no .pid suffix)


def live_groups() -> dict[int, int]:
    """Process group id -> how many live (non-zombie) processes it has; one pass over /proc."""
    counts: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) >= 3 and fields[0] not in (b"Z", b"X"):
            pgid = int(fields[2])
            counts[pgid] = counts.get(pgid, 0) + 1
    return counts


def group_alive(pgid: int) -> bool:
    """True when process group `pgid` has a live (non-zombie) process."""
    return pgid in live_groups()


def process_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def recorded_groups(run_dir: Path) -> dict[str, int]:
    """Component name -> process group id from the pidfiles, newest first (unreadable pidfiles skipped)."""
    found = []
    for pidfile in run_dir.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            found.append((pidfile.stat().st_mtime, pidfile.stem, int(pidfile.read_text().strip())))
    return {name: pgid for _, name, pgid in sorted(found, reverse=True)}


def live_components(run_dir: Path) -> list[str]:
    """Recorded components that still have a live process."""
    live = live_groups()
    return [name for name, pgid in recorded_groups(run_dir).items() if pgid in live]


@dataclass
class StopReport:
    """What `stop_recorded` did: components that exited on SIGTERM, the ones it had to SIGKILL, survivors."""

    stopped: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)  # still alive after SIGKILL (e.g. another user's)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait(groups: dict[str, int], deadline: float) -> dict[str, int]:
    """Poll until every group is gone or the deadline passes; the groups still alive."""
    left = dict(groups)
    while left:
        live = live_groups()
        left = {name: pgid for name, pgid in left.items() if pgid in live}
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return left


def stop_recorded(run_dir: Path, *, grace: float = 10.0, kill_wait: float = 5.0,
                  echo: Callable[[str], None] = lambda _m: None) -> StopReport:
    """Stop a foreground `up` (it stops its own components) and every recorded component; wait for all."""
    report = StopReport()
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / STOPPING
    marker.write_text(str(os.getpid()))
    try:
        up_pidfile = run_dir / UP_PID
        with contextlib.suppress(OSError, ValueError):
            up_pid = int(up_pidfile.read_text().strip())
            if up_pid != os.getpid() and process_alive(up_pid):
                echo(f"asking the running `sentinel up` (pid {up_pid}) to stop its components")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(up_pid, signal.SIGTERM)
                deadline = time.monotonic() + grace * 2 + kill_wait
                while process_alive(up_pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        up_pidfile.unlink(missing_ok=True)
        live = live_groups()
        groups = {name: pgid for name, pgid in recorded_groups(run_dir).items() if pgid in live}
        for pgid in groups.values():
            _signal_group(pgid, signal.SIGTERM)
        left = _wait(groups, time.monotonic() + grace)
        report.stopped = [name for name in groups if name not in left]
        if left:
            echo(f"still running after {grace:.0f}s, sending SIGKILL: {', '.join(left)}")
            for pgid in left.values():
                _signal_group(pgid, signal.SIGKILL)
            survivors = _wait(left, time.monotonic() + kill_wait)
            report.killed = [name for name in left if name not in survivors]
            report.survivors = list(survivors)
        for name in groups.keys() - set(report.survivors):
            (run_dir / f"{name}.pid").unlink(missing_ok=True)
        # Pidfiles of processes that were already gone are stale: remove them too.
        live = live_groups()
        for name, pgid in recorded_groups(run_dir).items():
            if name not in report.survivors and pgid not in live:
                (run_dir / f"{name}.pid").unlink(missing_ok=True)
        return report
    finally:
        marker.unlink(missing_ok=True)


def wait_for_previous_stop(run_dir: Path, timeout: float, echo: Callable[[str], None] = lambda _m: None) -> list[str]:
    """Before `up`: if a `down` is in progress, wait for it (up to `timeout`); the components still alive."""
    alive = live_components(run_dir)
    if alive and (run_dir / STOPPING).exists():
        echo(f"a previous stack is still stopping ({', '.join(alive)}); waiting up to {timeout:.0f}s")
        deadline = time.monotonic() + timeout
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = live_components(run_dir)
    return alive
