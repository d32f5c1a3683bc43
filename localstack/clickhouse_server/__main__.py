"""`python -m localstack.clickhouse_server --port N --path DIR`: serve a chdb data directory."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from localstack.clickhouse_server.engine import Engine
from localstack.clickhouse_server.server import create_server
from mcp_sentinel.env import integer, load_or_exit


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT, then release the data directory."""
    parser = argparse.ArgumentParser(prog="python -m localstack.clickhouse_server", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("CLICKHOUSE_HOST", "127.0.0.1"))
    port = load_or_exit("clickhouse server",
                        lambda: integer(os.environ, "CLICKHOUSE_HTTP_PORT", 8123, minimum=0, maximum=65535))
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--path", type=Path, default=Path(os.environ.get("CLICKHOUSE_PATH", "clickhouse-data")))
    connections = load_or_exit("clickhouse server",
                               lambda: integer(os.environ, "CLICKHOUSE_CONNECTIONS", 4, minimum=1, maximum=64))
    # Statements that run at once (one chdb session each); 1 serialises every request.
    parser.add_argument("--connections", type=int, default=connections)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s")
    engine = Engine(args.path, connections=max(1, args.connections))
    server = create_server(engine, args.host, args.port)
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logging.getLogger("localstack.clickhouse_server").info(
        "serving ClickHouse HTTP on %s:%d over chdb data %s", args.host, server.server_address[1], args.path
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
