"""A small process supervisor for the local stack and the test suite.

Each component is a real OS process (as in production, where each is its own pod or
Knative revision); the supervisor starts them in dependency order, waits for health,
keeps logs under `<data>/logs`, records PIDs under `<data>/run` and stops them in reverse.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localstack.config import REPO_ROOT, StackConfig
from localstack.shutdown import group_alive


class StartError(RuntimeError):
    """A component did not become healthy; the message names it and points at its log."""


@dataclass(frozen=True)
class Component:
    """How to run and health-check one local component."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    health_url: str | None = None
    health_port: int | None = None
    health_check: Callable[[], bool] | None = None
    startup_timeout: float = 30.0
    description: str = ""
    user: str | None = None  # run as this OS user (Postgres refuses root)
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 10.0


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def http_ok(url: str) -> bool:
    """True when GET url answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # loopback health URL
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Running:
    """A started component."""

    component: Component
    process: subprocess.Popen[bytes]
    log_path: Path


class Supervisor:
    """Starts, health-checks, restarts and stops components; usable as a context manager."""

    def __init__(self, config: StackConfig, *, echo: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.running: dict[str, Running] = {}
        self._echo = echo or (lambda _msg: None)
        self.log_dir = config.path("logs")
        self.run_dir = config.path("run")

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()

    def start_all(self, components: Iterable[Component]) -> None:
        """Start components in the given order, each only after the previous is healthy."""
        for comp in components:
            self.start(comp)

    def start(self, comp: Component) -> Running:
        """Start one component and wait until it is healthy (or raise StartError)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{comp.name}.log"
        env = dict(os.environ)
        env.update(comp.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        argv = list(comp.argv)
        if comp.user and os.geteuid() == 0:
            argv = ["runuser", "-u", comp.user, "--", *argv]
        t0 = time.monotonic()
        self._echo(f"starting {comp.name} {comp.description}".rstrip())
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(  # argv comes from our own component table
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO_ROOT), start_new_session=True
            )
        (self.run_dir / f"{comp.name}.pid").write_text(str(proc.pid))
        running = Running(comp, proc, log_path)
        self.running[comp.name] = running
        deadline = t0 + comp.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StartError(f"{comp.name} exited with code {proc.returncode}; see {log_path}:\n{tail(log_path)}")
            if self._healthy(comp):
                self._echo(f"  {comp.name} ready in {time.monotonic() - t0:.2f}s")
                return running
            time.sleep(0.05)
        self.stop(comp.name)
        raise StartError(
            f"{comp.name} not healthy after {comp.startup_timeout:.0f}s; see {log_path}:\n{tail(log_path)}"
        )

    @staticmethod
    def _healthy(comp: Component) -> bool:
        if comp.health_check is not None:
            return comp.health_check()
        if comp.health_url is not None:
            return http_ok(comp.health_url)
        if comp.health_port is not None:
            return tcp_open(comp.health_port)
        return True

    def stop(self, name: str, *, kill: bool = False) -> None:
        """Stop one component (SIGKILL when `kill`, else its stop signal, then SIGKILL after a grace period)."""
        running = self.running.pop(name, None)
        if running is None:
            return
        proc = running.process
        if proc.poll() is None:
            sig = signal.SIGKILL if kill else running.component.stop_signal
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=running.component.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # The leader's exit is not the group's: a child (tansu under its gate, a Postgres backend)
        # may still hold a port. Wait for the whole group, then SIGKILL what is left.
        deadline = time.monotonic() + running.component.stop_timeout
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / f"{name}.pid").unlink()

    def restart(self, name: str, *, kill: bool = False) -> Running:
        """Stop then start a running component with the same definition."""
        comp = self.running[name].component
        self.stop(name, kill=kill)
        return self.start(comp)

    def stop_all(self) -> None:
        """Stop every component in reverse start order."""
        for name in reversed(list(self.running)):
            self.stop(name)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


PYTHON = sys.executable
