"""Is a remote server's upstream there? A TCP connect, bounded in time even when name resolution hangs."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit


def upstream_problem(url: str, timeout: float = 1.0) -> str | None:
    """None when a TCP connection to the URL's host and port opens within `timeout`; else why not.

    The connect runs on a daemon thread joined with a deadline: `getaddrinfo` ignores socket
    timeouts, and a hanging resolver must not stall every other server's reconcile.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as exc:
            outcome.append(f"{host}:{port}: {exc.strerror or exc}")

    worker = threading.Thread(target=connect, name=f"probe-{host}:{port}", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome:
        return f"{host}:{port}: no answer within {timeout:.0f}s"
    return outcome[0]
