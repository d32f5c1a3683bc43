"""`python -m localstack.front_door`: serve the local front door."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

from localstack.front_door.proxy import create_app
from localstack.front_door.settings import FrontDoorSettings
from mcp_sentinel.env import load_or_exit


def main() -> int:
    """Run until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_or_exit("front door", lambda: FrontDoorSettings.from_env(os.environ))
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
