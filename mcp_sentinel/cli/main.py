"""`sentinel`: the operator CLI (local stack lifecycle and day-2 commands)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from mcp_sentinel.stack.config import StackConfig


def _echo(msg: str) -> None:
    print(msg, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    """Start the local stack, run the demo, then keep serving until Ctrl-C."""
    from mcp_sentinel.stack.components import local_stack
    from mcp_sentinel.stack.supervisor import StartError, Supervisor

    cfg = StackConfig()
    only = set(args.only.split(",")) if args.only else None
    sup = Supervisor(cfg, echo=_echo)
    stop = {"now": False}

    def _stop(_sig: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        sup.start_all(local_stack(cfg, only))
        if not args.no_demo:
            from mcp_sentinel.stack.demo import run_demo

            run_demo(cfg, echo=_echo)
        if args.detach:
            sup.running.clear()  # leave them running; `sentinel down` stops them
            return 0
        _echo("local stack running; press Ctrl-C to stop")
        while not stop["now"]:
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


def cmd_down(_args: argparse.Namespace) -> int:
    """Stop a stack started with `up --detach`."""
    from mcp_sentinel.stack.supervisor import kill_from_pidfiles

    stopped = kill_from_pidfiles(StackConfig().path("run"))
    _echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="sentinel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the local stack and its demo")
    up.add_argument("--no-demo", action="store_true", help="skip the demo calls")
    up.add_argument("--detach", action="store_true", help="return once started; stop with `sentinel down`")
    up.add_argument("--only", help="comma-separated parts to start (see mcp_sentinel.stack.components)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop a detached local stack")
    down.set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sentinel` console script."""
    args = build_parser().parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
