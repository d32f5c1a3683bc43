"""`python -m functions.ui`: serve the dashboard on PORT (Knative-style single process)."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from functions.ui.app import create_app
from functions.ui.settings import UiSettings
from mcp_sentinel.env import load_or_exit
from mcp_sentinel.secrets_check import enforce


def main() -> int:
    """Run until SIGTERM; exit 2 with a clear message on bad configuration."""
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format=fmt)
    enforce(os.environ, "ui")
    settings = load_or_exit("ui", lambda: UiSettings.from_env(os.environ))
    # proxy_headers=False: the login limiter must see the transport peer; forwarded addresses are
    # honoured only from UI_TRUSTED_PROXIES (functions.ui.ratelimit), never from anyone.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, proxy_headers=False,
                log_level="warning", access_log=False, timeout_keep_alive=75)
    return 0


if __name__ == "__main__":
    sys.exit(main())
