"""Helpers for hostile HTTP: raw sockets (for bytes no well-behaved client would send) and canary checks."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx2

from tests.fixtures.sidecar import ALICE

# The stateless 2026-07-28 shape: no initialize handshake needed, so each request stands alone.
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
BASE = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2026-07-28",
    **ALICE,
}


def tool_call(name: str, args: dict[str, Any] | None = None, id_: Any = 1) -> dict[str, Any]:
    """A `tools/call` JSON-RPC request."""
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {"name": name, "arguments": args or {}, "_meta": META},
    }


def post(url: str, body: Any, headers: dict[str, str] | None = None, method: str = "POST") -> httpx2.Response:
    """Send `body` (JSON-encoded unless bytes) with Alice's identity headers plus `headers`."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.request(method, url, content=content, headers={**BASE, **rpc_headers(body), **(headers or {})},
                          timeout=30)


def rpc_headers(body: Any) -> dict[str, str]:
    """The 2026-07-28 `Mcp-Method`/`Mcp-Name` headers matching a single-message body (the upstream requires them).

    Names that cannot travel as a plain header value are left out, so the sidecar's policy decides on the body.
    """
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        return {}
    out = {"Mcp-Method": body["method"]}
    name = (body.get("params") or {}).get("name") if isinstance(body.get("params"), dict) else None
    if isinstance(name, str):
        if not (name.isascii() and name.isprintable() and name == name.strip()):
            return {}
        out["Mcp-Name"] = name
    return out


def raw_http(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes to 127.0.0.1:port and return everything read until the peer closes or goes quiet."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.settimeout(2.0)
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def statuses(raw: bytes) -> list[int]:
    """Every HTTP status line found in a raw response stream (one per response on the connection)."""
    lines = raw.split(b"\r\n")
    return [int(line.split()[1]) for line in lines if line.startswith(b"HTTP/1.") and len(line.split()) > 1]


def doc_exists(url: str, title: str) -> bool:
    """Ask the upstream (through the sidecar, as Alice who may read) whether a document exists."""
    r = post(url, tool_call("read_document", {"title": title}, id_="canary"))
    assert r.status_code == 200, r.text
    return r.json()["result"]["isError"] is False
