"""`sentinel`: the operator CLI (day-2 commands against an API and a cluster; local commands come from a plugin)."""

from __future__ import annotations

import argparse
import os
import sys

from mcp_sentinel.cli import cluster, connect, remote
from mcp_sentinel.cli.client import ApiClient, CliError
from mcp_sentinel.cli.plugin import CliPlugin, discover


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
        "--timeout", type=seconds, default=os.environ.get("SENTINEL_TIMEOUT", "15"),
        help="seconds to wait for each API answer (env SENTINEL_TIMEOUT; default 15; restarts wait longer)",
    )
    return common


def seconds(raw: str) -> float:
    """argparse type: a number of seconds in (0, 3600]."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {raw}")
    return value


def build_parser(plugin: CliPlugin | None = None) -> argparse.ArgumentParser:
    """The argument parser (exposed for tests); `plugin` adds the local commands."""
    parser = argparse.ArgumentParser(prog="sentinel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = _common()
    if plugin is not None:
        plugin.add_commands(sub, common)
    status = sub.add_parser("status", parents=[common],
                            help="health of each local component (--kube: the cluster's pods)")
    status.add_argument("--only", help="comma-separated parts to check")
    status.add_argument("--namespace", "-N", help="with --kube: only this namespace's pods")
    cluster.add_arguments(status)
    status.set_defaults(run=lambda a, p, _cl: cluster.cmd_status(a) if a.kube else _local(p, "status").status(a))

    logs = sub.add_parser("logs", parents=[common],
                          help="print a component's log from <data>/logs (--kube: a pod's log)")
    logs.add_argument("component", help="component name, e.g. ingest, api, sidecar-a (--kube: or a pod name)")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--namespace", "-N", help="with --kube: look for the pod in this namespace only")
    logs.add_argument("--container", "-c", help="with --kube: the container (pods with several)")
    cluster.add_arguments(logs)
    logs.set_defaults(run=lambda a, p, _cl: cluster.cmd_logs(a) if a.kube else _local(p, "logs").logs(a))

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
    inspect.set_defaults(run=lambda a, p, cl: remote.cmd_policy_inspect(a, cl, p))

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


def _local(plugin: CliPlugin | None, command: str) -> CliPlugin:
    if plugin is None:
        raise CliError(f"`{command}` without --kube reads the local stack, which is not installed here; "
                       "use --kube for a cluster", exit_code=2)
    return plugin


def main(argv: list[str] | None = None, *, plugin: CliPlugin | None = None) -> int:
    """Entry point of the `sentinel` console script (`plugin`: the local commands; default: discovered)."""
    plugin = plugin if plugin is not None else discover()
    args = build_parser(plugin).parse_args(argv)
    if hasattr(args, "func"):
        rc: int = args.func(args)
        return rc
    try:
        args.api_url = args.api_url or (plugin.api_url() if plugin else "")
        # args.api_key stays what the caller gave: `connect` acts for a user and must not fall back to an admin key
        client = ApiClient(args.api_url, args.api_key or (plugin.api_key() if plugin else ""), timeout=args.timeout)
        result: int = args.run(args, plugin, client)
        return result
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
