"""A small real HTTP server speaking the API routes the CLI uses (the real API needs Postgres,
ClickHouse and Kubernetes; the CLI's contract is the HTTP surface, which this serves)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ADMIN_KEY = "test-admin-key"


@dataclass
class FakeApi:
    """Recorded requests and canned state."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    grants: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] | None = None


def _handler(state: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.requests.append({"method": method, "path": parts.path, "query": query, "body": body})
            if self.headers.get("x-api-key") != ADMIN_KEY:
                return self._send(401, {"error": "unauthorized"})
            path = parts.path
            if method == "GET" and path == "/api/events":
                events = [
                    {"timestamp": "2026-11-25T10:00:00Z", "source": "server-a-gateway", "event_type": "mcp.request",
                     "server": "server-a", "decision": "deny", "tool_name": "delete_file",
                     "payload": json.dumps({"human_id": "alice", "agent_id": "bot", "reason": "tool_not_granted"})},
                ]
                return self._send(200, {"events": events[: int(query.get("limit", "100"))], "meta": {}})
            if method == "POST" and path == "/api/runtime/actions/restart":
                if body == {"component": "nope"}:
                    return self._send(400, {"error": "unknown component"})
                return self._send(200, {"success": True, **(body or {})})
            if method == "GET" and path == "/api/runtime/policy":
                if state.policy is None:
                    return self._send(404, {"error": "policy not found"})
                return self._send(200, {**state.policy, "json": "{}", "source": "configmap/x"})
            for name, items in (("grants", state.grants), ("sessions", state.sessions)):
                if path == f"/api/runtime/{name}":
                    if method == "GET":
                        ns = query.get("namespace")
                        return self._send(200, {name: [i for i in items if ns in (None, i["namespace"])]})
                    if method == "POST":
                        if not body.get("serverRef"):
                            return self._send(400, {"error": "serverRef.name is required"})
                        item = {"namespace": "mcp-servers", **body}
                        items.append(item)
                        return self._send(200, {name[:-1]: item})
            return self._send(404, {"error": "not found"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


@contextmanager
def serve() -> Iterator[FakeApi]:
    """Serve the fake API on a free loopback port."""
    state = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
