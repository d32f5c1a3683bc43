"""Login throttling keyed on the real client address.

Upstream keyed on the left-most `X-Forwarded-For` entry, which any client can forge to dodge
the limit or to lock out someone else (§11 item 28). Here the key is
`mcp_sentinel.client_address.client_address` (shared with the API's `TRUSTED_PROXIES`): the
transport peer, or behind a trusted proxy the right-most untrusted forwarded hop; an IPv6 client
counts by its /64 (`throttle_key`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from functions.ui.settings import RateLimits
from mcp_sentinel.client_address import client_address, throttle_key

__all__ = ["LoginLimiter", "client_address"]

MAX_CLIENTS = 4096


@dataclass
class _Client:
    tokens: float
    updated: float
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class LoginLimiter:
    """A token bucket per client (every attempt costs one) plus a lockout after repeated failures."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._clients: dict[str, _Client] = {}

    def _get(self, key: str, now: float) -> _Client:
        c = self._clients.get(key)
        if c is None:
            if len(self._clients) >= MAX_CLIENTS:
                self._evict(now)
            c = self._clients[key] = _Client(tokens=self._limits.capacity, updated=now)
        else:
            refill = (now - c.updated) * self._limits.refill_per_minute / 60.0
            c.tokens = min(self._limits.capacity, c.tokens + refill)
            c.updated = now
        return c

    def _evict(self, now: float) -> None:
        # Drop unlocked clients first, oldest activity first; a locked client is never freed early.
        victims = sorted((c.locked_until > now, c.updated, k) for k, c in self._clients.items())
        for _, _, key in victims[: max(1, MAX_CLIENTS // 16)]:
            del self._clients[key]

    def attempt(self, key: str) -> float:
        """Take one attempt; returns 0 when allowed, else seconds until the client may retry."""
        now = self._clock()
        c = self._get(throttle_key(key), now)
        if c.locked_until > now:
            return c.locked_until - now
        if c.tokens < 1.0:
            return (1.0 - c.tokens) * 60.0 / self._limits.refill_per_minute
        c.tokens -= 1.0
        return 0.0

    def failure(self, key: str) -> None:
        """Record a failed login; locks the client after the threshold within the window."""
        now = self._clock()
        c = self._get(throttle_key(key), now)
        c.failures = [t for t in c.failures if now - t < self._limits.failure_window]
        c.failures.append(now)
        if len(c.failures) >= self._limits.failure_threshold:
            c.locked_until = now + self._limits.lockout
            c.failures.clear()

    def success(self, key: str) -> None:
        """A successful login clears the failure history (the bucket still applies)."""
        c = self._clients.get(throttle_key(key))
        if c is not None:
            c.failures.clear()
