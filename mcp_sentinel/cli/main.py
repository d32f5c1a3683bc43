"""`sentinel`: the operator CLI (local stack lifecycle and day-2 commands)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import sys
import time

from localstack.config import StackConfig
from mcp_sentinel.cli import cluster, connect, local, remote
from mcp_sentinel.cli.client import ApiClient, CliError


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


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument(
        "--api-url", default=os.environ.get("SENTINEL_API_URL"),
        help="API base URL (env SENTINEL_API_URL; default: the local stack's API)",
    )
    common.add_argument(
        "--api-key", default=os.environ.get("SENTINEL_API_KEY"),
        help="admin API key (env SENTINEL_API_KEY; default: the local stack's admin key)",
    )
    common.add_argument(
        "--timeout", type=_seconds, default=os.environ.get("SENTINEL_TIMEOUT", "15"),
        help="seconds to wait for each API answer (env SENTINEL_TIMEOUT; default 15; restarts wait longer)",
    )
    return common


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {raw}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="sentinel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = _common()
    up = sub.add_parser("up", help="start the local stack and its demo")
    up.add_argument("--no-demo", action="store_true", help="skip the demo calls")
    up.add_argument("--detach", action="store_true", help="return once started; stop with `sentinel down`")
    up.add_argument("--only", help="comma-separated parts to start (see localstack.components)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop a detached local stack; returns once every process has exited")
    down.add_argument("--grace", type=_seconds, default=10.0,
                      help="seconds to wait after SIGTERM before SIGKILL (default 10)")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", parents=[common],
                            help="health of each local component (--kube: the cluster's pods)")
    status.add_argument("--only", help="comma-separated parts to check")
    status.add_argument("--namespace", "-N", help="with --kube: only this namespace's pods")
    cluster.add_arguments(status)
    status.set_defaults(run=lambda a, c, _cl: cluster.cmd_status(a) if a.kube else local.cmd_status(a, c))

    logs = sub.add_parser("logs", parents=[common],
                          help="print a component's log from <data>/logs (--kube: a pod's log)")
    logs.add_argument("component", help="component name, e.g. ingest, api, sidecar-a (--kube: or a pod name)")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--namespace", "-N", help="with --kube: look for the pod in this namespace only")
    logs.add_argument("--container", "-c", help="with --kube: the container (pods with several)")
    cluster.add_arguments(logs)
    logs.set_defaults(run=lambda a, c, _cl: cluster.cmd_logs(a) if a.kube else local.cmd_logs(a, c))

    events = sub.add_parser("events", parents=[common],
                            help="recent audit events, newest first (--kube: Kubernetes events)")
    events.add_argument("--limit", type=int, default=20, help="1..1000 (default 20)")
    for name in remote.EVENT_FILTERS:
        events.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"only events with this {name}")
    cluster.add_arguments(events)
    events.set_defaults(run=lambda a, _c, cl: cluster.cmd_events(a) if a.kube else remote.cmd_events(a, cl))

    restart = sub.add_parser("restart", parents=[common], help="restart a component (or --all) through the API")
    restart.add_argument("component", nargs="?", help="component key")
    restart.add_argument("--all", action="store_true", help="restart every component")
    restart.set_defaults(run=lambda a, _c, cl: remote.cmd_restart(a, cl))

    policy = sub.add_parser("policy", help="rendered gateway policies")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    inspect = psub.add_parser("inspect", parents=[common], help="the rendered document and its revision")
    inspect.add_argument("server", help="MCP server name")
    inspect.add_argument("--namespace", "-N", default="mcp-servers", help="server namespace (default mcp-servers)")
    inspect.set_defaults(run=lambda a, c, cl: remote.cmd_policy_inspect(a, cl, c))

    connect.add_parser(sub, common)

    for resource in ("grants", "sessions", "servers"):
        singular = resource[:-1]
        p = sub.add_parser(singular, help=f"access {resource}")
        rsub = p.add_subparsers(dest=f"{singular}_command", required=True)
        apply = rsub.add_parser("apply", parents=[common], help=f"create or update {resource} from YAML/JSON")
        apply.add_argument("-f", "--file", required=True, help="file with one or more documents ('-' = stdin)")
        apply.set_defaults(run=lambda a, _c, cl, r=resource: remote.cmd_apply(a, cl, r))
        lst = rsub.add_parser("list", parents=[common], help=f"list {resource}")
        lst.add_argument("--namespace", "-N", help="namespace (default: the API's default)")
        lst.set_defaults(run=lambda a, _c, cl, r=resource: remote.cmd_list(a, cl, r))
        rm = rsub.add_parser("delete", parents=[common], help=f"delete one {singular}")
        rm.add_argument("name", help=f"{singular} name")
        rm.add_argument("--namespace", "-N", default="mcp-servers", help="namespace (default mcp-servers)")
        rm.set_defaults(run=lambda a, _c, cl, r=resource: remote.cmd_delete(a, cl, r))
    return parser


def main(argv: list[str] | None = None, *, config: StackConfig | None = None) -> int:
    """Entry point of the `sentinel` console script (`config` lets tests point it at their stack)."""
    args = build_parser().parse_args(argv)
    cfg = config or StackConfig()
    if hasattr(args, "func"):
        rc: int = args.func(args, cfg)
        return rc
    client = ApiClient(args.api_url or cfg.url("api"), args.api_key or cfg.admin_api_key, timeout=args.timeout)
    try:
        result: int = args.run(args, cfg, client)
        return result
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
