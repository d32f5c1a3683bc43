"""`python -m examples.workspace_assistant --port N`: serve the sample MCP server at /mcp."""

from __future__ import annotations

import argparse

import uvicorn

from examples.workspace_assistant.server import create_server


def main() -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    app = create_server().streamable_http_app(host=args.host)

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
