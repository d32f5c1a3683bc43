"""`python -m localstack.kube_apiserver --port N --state FILE --kubeconfig-out PATH`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import secrets
import signal
from pathlib import Path

from aiohttp import web

from localstack.kube_apiserver.app import create_app
from localstack.kube_apiserver.kubeconfig import write_kubeconfig
from localstack.kube_apiserver.settings import ApiServerSettings
from localstack.kube_apiserver.store import Store
from mcp_sentinel.env import load_or_exit

log = logging.getLogger("localstack.kube_apiserver")


def parse_settings(argv: list[str] | None, environ: dict[str, str]) -> ApiServerSettings:
    """Environment defaults, overridden by command-line flags."""
    base = ApiServerSettings.from_env(environ)
    p = argparse.ArgumentParser(prog="python -m localstack.kube_apiserver", description=__doc__)
    p.add_argument("--host", default=base.host)
    p.add_argument("--port", type=int, default=base.port, help="0 picks a free port")
    p.add_argument("--state", type=Path, default=base.state_file, help="JSON state file (omit: in memory)")
    p.add_argument("--kubeconfig-out", type=Path, default=base.kubeconfig_out)
    p.add_argument("--token", default=base.token)
    p.add_argument("--history", type=int, default=base.history)
    p.add_argument("--bookmark-interval", type=float, default=base.bookmark_interval)
    p.add_argument("--max-watch-seconds", type=int, default=base.max_watch_seconds)
    p.add_argument("--pod-log-dir", type=Path, default=base.pod_log_dir,
                   help="container logs served at pods/{name}/log: <dir>/<ns>/<pod>/<container>.log")
    a = p.parse_args(argv)
    return dataclasses.replace(
        base,
        host=a.host,
        port=a.port,
        state_file=a.state,
        kubeconfig_out=a.kubeconfig_out,
        token=a.token,
        history=a.history,
        bookmark_interval=a.bookmark_interval,
        max_watch_seconds=a.max_watch_seconds,
        pod_log_dir=a.pod_log_dir,
    )


async def serve(settings: ApiServerSettings) -> None:
    """Run until SIGTERM/SIGINT; the kubeconfig is written once the port is bound."""
    store = Store(settings.state_file, history=settings.history)
    # Keep the token across restarts so kubeconfigs already handed out stay valid.
    store.token = settings.token or store.token or secrets.token_urlsafe(24)
    store.save()
    settings = dataclasses.replace(settings, token=store.token)
    runner = web.AppRunner(create_app(settings, store), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    port = runner.addresses[0][1]
    if settings.kubeconfig_out is not None:
        write_kubeconfig(settings.kubeconfig_out, f"http://{settings.host}:{port}", store.token)
    log.info("local Kubernetes API server on http://%s:%s (state %s)", settings.host, port, settings.state_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_or_exit("kube apiserver", lambda: parse_settings(argv, dict(os.environ)))
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
