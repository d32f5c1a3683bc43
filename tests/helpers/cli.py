"""Helpers of the cli tests (constants and builders); their fixtures: tests/cli/conftest.py."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from localstack.config import StackConfig
from localstack.supervisor import Component, Supervisor

# A second namespace with its own server, so namespace filters have something to tell apart.
TEAM_NS = "cli-team"


TEAM_SERVER = "server-t"


def dead_url() -> str:
    """A loopback URL nothing listens on (a real refused connection)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@dataclass
class Stack:
    """The running stack, the events stored in it, and the flaky component's switch."""

    cfg: StackConfig
    sup: Supervisor
    events: list[dict[str, Any]]  # CloudEvents as posted, oldest first
    marker: Path

    @property
    def delay_file(self) -> Path:
        return self.marker.with_name("flaky-delay")

    def pid(self, name: str) -> int:
        return self.sup.running[name].process.pid

    def flaky(self) -> Component:
        return Component(
            name="flaky",
            argv=[sys.executable, "-c", FLAKY, str(self.cfg.ports.s3), str(self.marker), str(self.delay_file)],
            health_port=self.cfg.ports.s3, startup_timeout=30,
        )

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """The admin API directly (to check what the CLI did, or to prepare state)."""
        r = httpx.request(method, self.cfg.url("api", path), headers={"x-api-key": self.cfg.admin_api_key},
                          timeout=60, **kw)
        assert r.status_code < 300, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json()


# Serves HTTP until a marker file exists; then it refuses to start (a restart that fails).
# While a delay file exists it waits that many seconds before serving (a slow restart).
FLAKY = """
import http.server, os, sys, time
if os.path.exists(sys.argv[2]):
    sys.exit("refusing to start: " + sys.argv[2])
if os.path.exists(sys.argv[3]):
    time.sleep(float(open(sys.argv[3]).read()))
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""
