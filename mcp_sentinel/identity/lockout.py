"""Login lockout keyed on (account, real peer address).

Upstream keyed buckets on the left-most `X-Forwarded-For` entry only, so a client could dodge
the lock by sending a fresh header, and everyone behind one NAT shared a lock (§11.28). Here the
key is the lower-cased account *and* the client address: the transport peer, or, only when that
peer is a configured trusted proxy (`TRUSTED_PROXIES`, e.g. the UI), the right-most untrusted
hop of its `X-Forwarded-For` (`mcp_sentinel.client_address`). Backoff follows upstream:
failures 1-2 free, the 3rd locks 15 s, doubling to a 5 min cap; success clears the bucket.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from mcp_sentinel.client_address import throttle_key

FREE_FAILURES = 2
BASE_LOCK_SECONDS = 15.0
MAX_LOCK_SECONDS = 300.0
IDLE_PRUNE_SECONDS = 1800.0
MAX_BUCKETS = 4096
EVICT_BATCH = 256


@dataclass
class _Bucket:
    failures: int = 0
    locked_until: float = 0.0
    last_seen: float = 0.0


class LoginLockout:
    """In-process lockout table (bounded; per replica)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._last_prune = 0.0

    @staticmethod
    def key(account: str, peer: str) -> tuple[str, str]:
        """The bucket key for an attempt (an IPv6 peer counts by its /64)."""
        return (account.strip().lower(), throttle_key(peer) if peer else "unknown")

    def retry_after(self, account: str, peer: str) -> float:
        """Seconds until this account may be tried again from this peer (0 when not locked)."""
        b = self._buckets.get(self.key(account, peer))
        if b is None:
            return 0.0
        return max(0.0, b.locked_until - self._clock())

    def failure(self, account: str, peer: str) -> int:
        """Record a failed attempt; returns the failure count."""
        now = self._clock()
        self._prune(now)
        k = self.key(account, peer)
        b = self._buckets.pop(k, None) or _Bucket()
        b.failures += 1
        b.last_seen = now
        if b.failures > FREE_FAILURES:
            lock = min(MAX_LOCK_SECONDS, BASE_LOCK_SECONDS * 2 ** (b.failures - FREE_FAILURES - 1))
            b.locked_until = now + lock
        self._buckets[k] = b
        return b.failures

    def success(self, account: str, peer: str) -> None:
        """A successful login clears the bucket."""
        self._buckets.pop(self.key(account, peer), None)

    def _prune(self, now: float) -> None:
        if now - self._last_prune >= 60.0:
            self._last_prune = now
            for k in [k for k, b in self._buckets.items() if now - b.last_seen > IDLE_PRUNE_SECONDS]:
                del self._buckets[k]
        if len(self._buckets) >= MAX_BUCKETS:
            # Evict unlocked buckets first (oldest first), then the oldest locked ones.
            unlocked = [k for k, b in self._buckets.items() if b.locked_until <= now][:EVICT_BATCH]
            victims = unlocked or list(self._buckets)[:EVICT_BATCH]
            for k in victims:
                del self._buckets[k]
