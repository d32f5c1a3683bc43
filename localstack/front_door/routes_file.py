"""The front door's dynamic route table: a JSON file the local reconciler writes and the front door re-reads.

Format: `{"routes": {"<server>": "http://127.0.0.1:<port>"}}`. A file rather than an admin
endpoint because a file has no network surface to defend, survives a front-door restart, and its
trust boundary is the data folder's permissions (the same as the policy files the sidecars read).

Fail closed: a target that is not a loopback http URL, a name that is not a server name, or a file
that does not parse drops *all* dynamic routes (logged) instead of routing anywhere unexpected;
the static routes (`MCP_SERVERS`) are unaffected and always win over a dynamic entry of the same name.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from localstack.front_door.settings import SERVER_NAME

log = logging.getLogger(__name__)

# First path segments that are never MCP servers (the front door's own and the UI's API).
RESERVED_NAMES = frozenset({"api", "ingest", "__front_door"})


class RouteFileError(ValueError):
    """The routes file is not a valid route table."""


def _loopback_target(name: str, raw: object) -> str:
    if not isinstance(raw, str):
        raise RouteFileError(f"route {name!r}: target must be a string")
    parts = urlsplit(raw)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback or parts.port is None or parts.username or parts.password:
        raise RouteFileError(f"route {name!r}: target must be http://<loopback address>:<port>, got {raw!r}")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise RouteFileError(f"route {name!r}: target must be a base URL without path, got {raw!r}")
    return f"http://{parts.netloc}"


def parse_routes(text: str) -> dict[str, str]:
    """The route table in `text`; RouteFileError on anything but a valid table."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RouteFileError(f"not JSON: {exc}") from exc
    routes = doc.get("routes") if isinstance(doc, dict) else None
    if not isinstance(routes, dict):
        raise RouteFileError('expected {"routes": {name: url}}')
    out: dict[str, str] = {}
    for name, target in routes.items():
        if not isinstance(name, str) or not SERVER_NAME.match(name) or name in RESERVED_NAMES:
            raise RouteFileError(f"route name {name!r} is not a server name")
        out[name] = _loopback_target(name, target)
    return out


def write_routes(path: Path, routes: Mapping[str, str]) -> None:
    """Atomically replace the route table (validated first: the writer fails, not the front door)."""
    text = json.dumps({"routes": dict(sorted(routes.items()))}, indent=1)
    parse_routes(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # the front door must never read a half-written table


class RouteTable:
    """The current dynamic routes, reloaded when the file's identity (inode, size, mtime) changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.routes: dict[str, str] = {}
        self._seen: tuple[int, int, int] | None = None

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when the table changed."""
        if self.path is None:
            return False
        try:
            st = self.path.stat()
        except FileNotFoundError:
            st = None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns) if st is not None else None
        if stamp == self._seen:
            return False
        self._seen = stamp
        new: dict[str, str] = {}
        if st is not None:
            try:
                new = parse_routes(self.path.read_text(encoding="utf-8"))
            except (OSError, RouteFileError) as exc:
                log.error("routes file %s rejected, serving no dynamic routes: %s", self.path, exc)
                new = {}
        changed = new != self.routes
        if changed:
            log.info("dynamic routes now: %s", ", ".join(sorted(new)) or "(none)")
        self.routes = new
        return changed
