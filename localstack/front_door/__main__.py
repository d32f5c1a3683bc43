"""`python -m localstack.front_door`: serve the local front door."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

from localstack.front_door.proxy import create_app
from localstack.front_door.settings import FrontDoorSettings, SettingsError


def main() -> int:
    """Run until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = FrontDoorSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"front door: {exc}", file=sys.stderr)  # noqa: T201 - fatal start-up error
        return 2
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
