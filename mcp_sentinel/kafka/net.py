"""Broker addresses and reachability (stdlib only, so ingest's cold start does not load a Kafka client)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable


def parse_brokers(value: str) -> list[str]:
    """`KAFKA_BROKERS` (comma list, blanks ignored) as a list of `host:port`."""
    return [b.strip() for b in value.split(",") if b.strip()]


def broker_reachable(brokers: Iterable[str], timeout: float = 2.0) -> bool:
    """True when at least one broker accepts a TCP connection within `timeout` seconds in total."""
    deadline = time.monotonic() + timeout
    for broker in brokers:
        host, _, port = broker.rpartition(":")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        with contextlib.suppress(OSError, ValueError), socket.create_connection((host or broker, int(port)), remaining):
            return True
    return False
