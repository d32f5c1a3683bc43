"""`sentinel connect <server>`: client configuration for a governed server, or the stdio bridge itself.

What it prints (`--config`):
* `http` (default): the `mcpServers` entry for clients that speak streamable HTTP, with an
  `Authorization: Bearer` header holding a platform token. That token lives 10 minutes at most
  (the session's end, if sooner); its expiry goes to stderr (and `--json`), so nobody mistakes the
  block for a lasting credential: it suits a quick test, not a config file.
* `stdio`: the entry for clients that launch servers as commands: it runs
  `sentinel connect <server> --stdio`, which fetches and refreshes tokens itself, so the config never
  holds a token; it holds the user's credential (their API key) instead, as any stdio server's
  config holds its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from localstack.config import StackConfig
from mcp_sentinel.cli.agent_identity import AgentIdentity, Credential, IdentityError
from mcp_sentinel.cli.client import CliError

DEFAULT_AGENT = "sentinel-connect"


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """`sentinel connect` and its options."""
    p = sub.add_parser("connect", parents=[common], help="connect an MCP client to a governed server")
    p.add_argument("server", help="MCP server name")
    p.add_argument("--namespace", "-N", default="", help="the server's namespace (default: the API's default)")
    p.add_argument("--agent", default=os.environ.get("SENTINEL_AGENT_ID", DEFAULT_AGENT),
                   help=f"agent id the session is for (env SENTINEL_AGENT_ID; default {DEFAULT_AGENT})")
    p.add_argument("--trust", default="", help="requested trust (low, medium, high; capped by your grant)")
    p.add_argument("--session-ttl", default="", help="requested session lifetime, e.g. 8h (API default 1h)")
    p.add_argument("--url", default="", help="MCP endpoint to use instead of the server's published URL")
    p.add_argument("--name", default="", help="key of the entry under mcpServers (default: the server name)")
    p.add_argument("--config", choices=("http", "stdio"), default="http",
                   help="http: URL + short-lived token header (default); stdio: launches this bridge")
    p.add_argument("--stdio", action="store_true", help="run as a stdio <-> streamable-HTTP bridge")
    p.set_defaults(run=lambda a, c, _cl: cmd_connect(a, c))


def credential(args: argparse.Namespace) -> Credential:
    """The user's credential: `--api-key`/SENTINEL_API_KEY, else SENTINEL_EMAIL + SENTINEL_PASSWORD."""
    if args.api_key:
        return Credential(api_key=args.api_key)
    email, password = os.environ.get("SENTINEL_EMAIL", ""), os.environ.get("SENTINEL_PASSWORD", "")
    if email and password:
        return Credential(email=email, password=password)
    raise CliError("connect acts for a user: set SENTINEL_API_KEY (or --api-key) to your user key (mcpu_…, "
                   "dashboard Keys tab), or SENTINEL_EMAIL and SENTINEL_PASSWORD", exit_code=2)


def identity(args: argparse.Namespace, cfg: StackConfig) -> AgentIdentity:
    return AgentIdentity(
        api_url=args.api_url or cfg.url("api"), credential=credential(args), server=args.server,
        namespace=args.namespace, agent=args.agent, trust=args.trust, ttl=args.session_ttl, timeout=args.timeout,
    )  # fmt: skip


def launcher() -> list[str]:
    """How to start this CLI again: the `sentinel` script of this interpreter's environment, else `-m`."""
    script = Path(sys.executable).parent / "sentinel"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "mcp_sentinel.cli.main"]


def stdio_entry(args: argparse.Namespace, ident: AgentIdentity) -> dict[str, Any]:
    command, *prefix = launcher()
    argv = [*prefix, "connect", args.server, "--stdio", "--api-url", ident.api_url, "--agent", ident.agent]
    for flag, value in (("--namespace", args.namespace), ("--trust", args.trust),
                        ("--session-ttl", args.session_ttl), ("--url", args.url)):
        if value:
            argv += [flag, value]
    cred = ident.credential
    env = {"SENTINEL_API_KEY": cred.api_key} if cred.api_key else {
        "SENTINEL_EMAIL": cred.email, "SENTINEL_PASSWORD": cred.password}
    return {"type": "stdio", "command": command, "args": argv, "env": env}


async def _token(ident: AgentIdentity) -> Any:
    async with httpx.AsyncClient() as http:
        return await ident.fetch(http)


def cmd_connect(args: argparse.Namespace, cfg: StackConfig) -> int:
    """Print client configuration for `server`, or (`--stdio`) bridge stdin/stdout to it."""
    ident = identity(args, cfg)
    if args.stdio:
        from mcp_sentinel.cli.stdio_bridge import run_bridge

        return asyncio.run(run_bridge(ident, args.url))
    name = args.name or args.server
    # Both forms mint once: a server or grant that will not work fails here, not in the client.
    try:
        token = asyncio.run(_token(ident))
    except IdentityError as exc:
        raise CliError(str(exc), exit_code=1) from exc
    url = args.url or token.resource
    if args.config == "stdio":
        entry = stdio_entry(args, ident)
        note = "this entry holds your credential (not a token): keep the file private"
    else:
        entry = {"type": "http", "url": url, "headers": {"Authorization": f"Bearer {token.access_token}"}}
        left = max(0, int(token.expires_at - time.time()))
        note = (f"the token expires at {token.expires_at_text} (in {left} s); for a lasting entry use "
                "--config stdio (the bridge refreshes tokens)")
    config = {"mcpServers": {name: entry}}
    if args.json:
        print(json.dumps({"config": config, "url": url, "expires_at": token.expires_at_text,
                          "session": {"namespace": token.namespace, "name": token.session}}, indent=2))
    else:
        print(json.dumps(config, indent=2))
        print(f"# session {token.namespace}/{token.session}; {note}", file=sys.stderr)
    return 0
