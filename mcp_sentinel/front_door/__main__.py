"""`python -m mcp_sentinel.front_door`: serve the local front door."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

from mcp_sentinel.env import load_or_exit
from mcp_sentinel.front_door.proxy import create_app
from mcp_sentinel.front_door.settings import FrontDoorSettings


def main() -> int:
    """Run until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_or_exit("front door", lambda: FrontDoorSettings.from_env(os.environ))
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
