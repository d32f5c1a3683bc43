"""The local stack's part of the `sentinel` CLI: `up`, `down`, local `status`/`logs` and local defaults.

Registered as a `mcp_sentinel.cli` entry-point plugin (pyproject.toml), so `sentinel` finds it when
the local stack is installed; `python -m localstack.cli` runs the same CLI with it explicitly.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from localstack import cli_local
from localstack.config import StackConfig
from mcp_sentinel.cli import main as product


def _echo(msg: str) -> None:
    print(msg, flush=True)


def cmd_up(args: argparse.Namespace, cfg: StackConfig) -> int:
    """Start the local stack, run the demo, then keep serving until Ctrl-C."""
    from localstack.components import local_stack
    from localstack.control import serve_pending
    from localstack.shutdown import UP_PID
    from localstack.supervisor import StartError, Supervisor

    only = set(args.only.split(",")) if args.only else None
    refusal = previous_stack_refusal(cfg, full=only is None)
    if refusal:
        _echo(f"error: {refusal}")
        return 1
    sup = Supervisor(cfg, echo=_echo)
    stop = {"now": False}

    def _stop(_sig: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        sup.start_all(local_stack(cfg, only))
        if not args.no_demo:
            from localstack.demo import run_demo

            run_demo(cfg, echo=_echo)
        if args.detach:
            sup.running.clear()  # leave them running; `sentinel down` stops them
            return 0
        (sup.run_dir / UP_PID).write_text(str(os.getpid()))  # `sentinel down` from another shell stops us
        _echo("local stack running; press Ctrl-C to stop")
        while not stop["now"]:
            serve_pending(sup)  # local RestartComponent requests from the worker / API
            for name, running in list(sup.running.items()):
                if running.process.poll() is not None:
                    _echo(f"{name} exited with code {running.process.returncode}; see {running.log_path}")
                    sup.running.pop(name)
            time.sleep(0.5)
        return 0
    except StartError as exc:
        _echo(f"error: {exc}")
        return 1
    finally:
        sup.stop_all()
        (sup.run_dir / UP_PID).unlink(missing_ok=True)


def previous_stack_refusal(cfg: StackConfig, *, full: bool) -> str:
    """Why `up` must not start now ("" = go): a stack still running, or (full stack) a port in use.

    A `down` in progress is waited for first, so `down` then `up` back to back just works.
    """
    from localstack.shutdown import wait_for_previous_stop

    run_dir = cfg.path("run")
    alive = wait_for_previous_stop(run_dir, timeout=30.0, echo=_echo)
    if alive:
        return (f"a local stack is still running from {cfg.data_dir} ({', '.join(alive)}); "
                "stop it with `sentinel down` first")
    if full:
        ports = dataclasses.asdict(cfg.ports).items()
        busy = [f"{name} ({port})" for name, port in ports if _port_busy(cfg.host, port)]
        if busy:
            return ("ports already in use by another process: " + ", ".join(busy)
                    + "; stop whatever holds them (another stack? `sentinel down`) and retry")
    return ""


def _port_busy(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as every component binds: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def cmd_down(args: argparse.Namespace, cfg: StackConfig) -> int:
    """Stop a stack started with `up --detach` (or a foreground `up`); return once every process has exited."""
    from localstack.shutdown import stop_recorded

    report = stop_recorded(cfg.path("run"), grace=args.grace, echo=_echo)
    if not (report.stopped or report.killed or report.survivors):
        _echo("stopped: nothing was running")
        return 0
    _echo("stopped: " + (", ".join(report.stopped) or "none on SIGTERM"))
    if report.killed:
        _echo(f"killed (SIGKILL after {args.grace:.0f}s): " + ", ".join(report.killed))
    if report.survivors:
        _echo("error: still running after SIGKILL (another user's process?): " + ", ".join(report.survivors))
        return 1
    return 0



class LocalStackPlugin:
    """The product CLI's plugin for one local stack (`config`: its data folder and ports)."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.cfg = config or StackConfig()

    def add_commands(self, sub: Any, common: argparse.ArgumentParser) -> None:
        """`up` and `down`."""
        up = sub.add_parser("up", help="start the local stack and its demo")
        up.add_argument("--no-demo", action="store_true", help="skip the demo calls")
        up.add_argument("--detach", action="store_true", help="return once started; stop with `sentinel down`")
        up.add_argument("--only", help="comma-separated parts to start (see localstack.components)")
        up.set_defaults(func=lambda a: cmd_up(a, self.cfg))
        down = sub.add_parser("down", help="stop a detached local stack; returns once every process has exited")
        down.add_argument("--grace", type=product.seconds, default=10.0,
                          help="seconds to wait after SIGTERM before SIGKILL (default 10)")
        down.set_defaults(func=lambda a: cmd_down(a, self.cfg))

    def api_url(self) -> str:
        """The local API."""
        return self.cfg.url("api")

    def api_key(self) -> str:
        """The local stack's admin key."""
        return self.cfg.admin_api_key

    def status(self, args: argparse.Namespace) -> int:
        """Health of the local processes."""
        return cli_local.cmd_status(args, self.cfg)

    def logs(self, args: argparse.Namespace) -> int:
        """A local process's log."""
        return cli_local.cmd_logs(args, self.cfg)

    def policy_file(self, server: str, namespace: str) -> Path | None:
        """The policy file the local stack writes for a server."""
        return self.cfg.policy_file(server, namespace)


def plugin() -> LocalStackPlugin:
    """Entry point of the `mcp_sentinel.cli` group."""
    return LocalStackPlugin()


def main(argv: list[str] | None = None, *, config: StackConfig | None = None) -> int:
    """The `sentinel` CLI with this local stack (`config` lets tests point it at their stack)."""
    return product.main(argv, plugin=LocalStackPlugin(config))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
