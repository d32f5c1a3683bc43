"""`python -m sidecar`: run the proxy and the metrics listener until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import sys

from aiohttp import web

from mcp_sentinel.inventory_token import InventoryKeyError
from mcp_sentinel.secrets_check import enforce
from sidecar.app import build_state, create_app, create_metrics_app
from sidecar.errors import TlsConfigError
from sidecar.settings import SettingsError, SidecarSettings
from sidecar.tls import CertReloader, server_context


async def serve(settings: SidecarSettings, ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve both listeners until a stop signal arrives; the proxy port speaks TLS with `ssl_context`."""
    state = build_state(settings)
    state.store.check()
    if state.store.refusal:  # the policy on disk at start cannot be enforced with this configuration
        raise SettingsError(state.store.refusal)
    app = create_app(settings, state)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    mrunner = web.AppRunner(create_metrics_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    await mrunner.setup()
    irunner: web.AppRunner | None = None
    if settings.inventory_public_keys_file:
        from sidecar.inventory import create_inventory_app  # loads jwt: only when the listener is on

        irunner = web.AppRunner(create_inventory_app(state), access_log=None, handle_signals=False)
        await irunner.setup()
    reload_task: asyncio.Task[None] | None = None
    if ssl_context is not None:
        reloader = CertReloader(ssl_context, settings.tls_cert_file, settings.tls_key_file,
                                on_result=lambda result: state.metrics.tls_reloads.labels(result).inc())
        reload_task = asyncio.create_task(reloader.run(settings.tls_reload_interval), name="tls-reload")
    await web.TCPSite(runner, settings.host, settings.port, backlog=1024, ssl_context=ssl_context).start()
    await web.TCPSite(mrunner, settings.host, settings.metrics_port).start()
    if irunner is not None:  # the same TLS as the proxy port: an mTLS gateway's API probe presents its certificate
        await web.TCPSite(irunner, settings.host, settings.inventory_port, ssl_context=ssl_context).start()
    # Everything built so far (modules, the compiled policy, app) lives for the whole process:
    # move it out of the collector's generations so full collections stay short (p99 latency).
    gc.collect()
    gc.freeze()
    logging.getLogger("sidecar").info(
        "sidecar listening on %s:%d (metrics %d) -> %s",
        settings.host,
        settings.port,
        settings.metrics_port,
        settings.upstream_url,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if reload_task is not None:
        reload_task.cancel()
    if irunner is not None:
        await irunner.cleanup()
    await runner.cleanup()  # drains in-flight exchanges, then stops the audit sender (spool stays on disk)
    await mrunner.cleanup()


def main() -> None:
    """Entry point."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    enforce(os.environ, "sidecar")
    try:
        settings = SidecarSettings.from_env(os.environ)
        ssl_context = (
            server_context(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
            if settings.tls_enabled
            else None
        )
    except (SettingsError, TlsConfigError) as exc:
        print(f"sidecar: {exc}", file=sys.stderr)  # noqa: T201 - fatal configuration error
        raise SystemExit(2) from exc
    try:
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve(settings, ssl_context))
        else:
            uvloop.run(serve(settings, ssl_context))
    except (SettingsError, InventoryKeyError) as exc:
        print(f"sidecar: {exc}", file=sys.stderr)  # noqa: T201 - fatal configuration error
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
