"""`python -m workflows`: run the Temporal worker until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any


async def _main(**overrides: Any) -> int:
    from workflows.worker import WorkerSettings, run_worker

    try:
        settings = WorkerSettings.from_env(os.environ)
    except ValueError as exc:
        logging.getLogger("workflows").error("%s", exc)
        return 2
    if settings.restart_backend == "local" and "restart_backend" not in overrides:
        logging.getLogger("workflows").error(
            "RESTART_BACKEND=local restarts local-stack processes: run the worker as `python -m localstack.worker`"
        )
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop, **overrides)
    return 0


def main(**overrides: Any) -> None:
    """Run the worker; `overrides` inject clients into its activities (the local stack's restart backend)."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    from mcp_sentinel.secrets_check import enforce

    enforce(os.environ, "worker")  # before Temporal's bridge is loaded: a plain exit 2
    code = asyncio.run(_main(**overrides))
    sys.stdout.flush()
    sys.stderr.flush()
    # The SDK's Rust bridge can crash during interpreter teardown (a known quirk on this platform).
    os._exit(code)


if __name__ == "__main__":
    main()
