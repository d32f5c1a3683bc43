"""MCP servers (official SDK, low-level API) the live-inventory tests probe over real HTTP.

`python -m tests.helpers.inventory_servers --mode rich --port N` serves at `/mcp`:

* `rich`: tools in two pages (a cursor to follow), one prompt, one resource;
* `broken-tools`: answers the handshake and advertises tools, but `tools/list` fails.
"""

from __future__ import annotations

import argparse
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError

from mcp_sentinel.kube.resources import API_VERSION, MCP_SERVER
from tests.fixtures.kube import LocalKube

PAGES = (
    [types.Tool(name="alpha", description="First tool.", input_schema={"type": "object"}),
     types.Tool(name="beta", description="Second tool.", input_schema={"type": "object"})],
    [types.Tool(name="gamma", description="Third tool, on the second page.", input_schema={"type": "object"})],
)


def rich() -> Server[Any]:
    """Two pages of tools, a prompt and a resource."""

    async def list_tools(_ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        page = 1 if params is not None and params.cursor == "page-2" else 0
        return types.ListToolsResult(tools=PAGES[page], next_cursor="page-2" if page == 0 else None)

    async def list_prompts(_ctx: Any, _params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[types.Prompt(name="greet", description="Say hello.")])

    async def list_resources(_ctx: Any, _params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        readme = types.Resource(name="readme", uri="doc://readme", description="The readme.")
        return types.ListResourcesResult(resources=[readme])

    return Server("inventory-rich", on_list_tools=list_tools, on_list_prompts=list_prompts,
                  on_list_resources=list_resources)


def broken_tools() -> Server[Any]:
    """Advertises tools; listing them fails with an internal error whose text must not leak."""

    async def list_tools(_ctx: Any, _params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        raise MCPError(types.INTERNAL_ERROR, "database password=hunter2 rejected")

    return Server("inventory-broken", on_list_tools=list_tools)


def main() -> None:
    """Serve one of the servers above until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("rich", "broken-tools"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = rich() if args.mode == "rich" else broken_tools()
    app = server.streamable_http_app(host=args.host)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()


LOCAL = "http://127.0.0.1:{port}{path}"


def put_server(kube: LocalKube, ns: str, name: str, port: int, tools: list[str], **spec: Any) -> dict[str, Any]:
    """Create an MCPServer declaring `tools` (all read-only) at `port`."""
    body = {
        "apiVersion": API_VERSION, "kind": MCP_SERVER.kind, "metadata": {"name": name},
        "spec": {"image": "example/srv:1", "port": port, "tools": [{"name": t, "sideEffect": "read"} for t in tools],
                 **spec},
    }  # fmt: skip
    obj: dict[str, Any] = kube.kube.servers.create(ns, body)
    return obj
