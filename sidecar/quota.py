"""Quota enforcement on the hot path (issue 18.1): counting allowed tool calls against their grant's quotas.

After the evaluator allows a `tools/call`, the quotas of the grant the allow is attributed to
(`Decision.matched_grant`, see `mcp_sentinel.policy.quotas`) that apply to the tool and its side
effect each count the call under one key: (grant, quota index, who) where *who* is the matched
session (`namespace/name`), the agent id or the human id (see `who`). A call that would take any of its
counters past the limit is denied with `quota_exceeded` (429) and counts nowhere.

Windows are fixed and anchored at the first counted call of a key: at most `limit` calls from
then until `windowSeconds` later; the next call after that opens a new window. Retry-After is
the time left in the exceeded window. The clock is monotonic, so wall-clock steps move nothing.

Several replicas (docs/decisions/sidecar.md, "Quotas"): limits are split, not shared. Each replica
enforces ceil(limit / QUOTA_REPLICAS); a shared store would put a network round trip on every
call. The fleet as a whole admits at most replicas * ceil(limit / replicas) < limit + replicas.

Memory is bounded: counters expire with their window (a heap of window ends), and at most
QUOTA_MAX_COUNTERS live at once; past that a call that needs a new counter is denied (fail closed).
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.normalize import fold
from mcp_sentinel.policy.quotas import CompiledQuota
from mcp_sentinel.policy.reasons import QUOTA_EXCEEDED
from mcp_sentinel.policy.types import Decision, Identity

CounterKey = tuple[str, str, int, str]
"""(grant namespace, grant name, quota index, who): one counter."""

RETRY_AFTER = "retryAfterSeconds"
"""The `Decision.extra` key (and JSON-RPC `error.data` key) carrying whole seconds until a retry can pass."""


class QuotaCounters:
    """Fixed windows per key, anchored at the key's first counted call; all-or-nothing admission."""

    def __init__(self, max_counters: int) -> None:
        self.max_counters = max_counters
        self._windows: dict[CounterKey, list[float]] = {}  # key -> [window start, count]
        self._ends: list[tuple[float, CounterKey, float]] = []  # (window end, key, window start)

    def __len__(self) -> int:
        return len(self._windows)

    def _expire(self, now: float) -> None:
        ends, windows = self._ends, self._windows
        while ends and ends[0][0] <= now:
            _end, key, start = heapq.heappop(ends)
            entry = windows.get(key)
            if entry is not None and entry[0] == start:
                del windows[key]

    def admit(self, wanted: list[tuple[CounterKey, int, float]], now: float) -> tuple[list[bool], float, bool]:
        """Count one call against every (key, limit, window) of `wanted`, or against none of them.

        Returns per item whether it was refused, the seconds until a retry can pass (0.0 when all
        were admitted and counted), and whether the refusal is the full table rather than a limit.
        The same key may appear several times (a batch of calls): each occurrence counts once.
        """
        self._expire(now)
        windows = self._windows
        pending: dict[CounterKey, list[Any]] = {}  # key -> [calls, window, live entry or None]
        over = [False] * len(wanted)
        retry = 0.0
        for i, (key, limit, window) in enumerate(wanted):
            slot = pending.get(key)
            if slot is None:
                entry = windows.get(key)
                live = entry if entry is not None and now < entry[0] + window else None
                slot = pending[key] = [0, window, live]
            slot[0] += 1
            live = slot[2]
            if (int(live[1]) if live is not None else 0) + slot[0] > limit:
                over[i] = True
                left = (live[0] if live is not None else now) + window - now
                retry = max(retry, min(left, window))  # min: float rounding of start + window - now
        if any(over):
            return over, retry, False
        fresh = sum(1 for slot in pending.values() if slot[2] is None)
        if fresh and len(windows) + fresh > self.max_counters:
            # Full table (many keys with long windows): fail closed until the earliest window ends.
            soonest = self._ends[0][0] - now if self._ends else 1.0
            return [True] * len(wanted), max(soonest, 0.001), True
        for key, (n, window, live) in pending.items():
            if live is not None:
                live[1] += n
            else:
                windows[key] = [now, float(n)]
                heapq.heappush(self._ends, (now + window, key, now))
        return over, 0.0, False


def who(quota: CompiledQuota, identity: Identity, d: Decision) -> str:
    """The per-key a call counts under.

    Sessions are the *matched* binding, not the raw header: a caller cannot mint fresh session ids
    to escape a per-session quota. A caller without the named part (no bound session, no agent id,
    no human id) counts under its whole identity instead: it is one session, agent or human of its
    own, never merged with other callers (one of them could exhaust the rest) and never split.
    """
    if quota.per == "session":
        part = f"{d.matched_session_namespace}/{d.matched_session}" if d.matched_session else ""
    elif quota.per == "agent":
        part = identity.agent_id
    else:
        part = identity.human_id
    if part:
        return part
    return f"\x00{identity.human_id}\x00{identity.agent_id}\x00{identity.team_id}"


class _TableSize(Collector):
    def __init__(self, size: Callable[[], int]) -> None:
        self._size = size

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("mcp_gateway_quota_counters", "Live quota counters (keys with an open window)",
                                self._size())  # fmt: skip


class QuotaGate:
    """The sidecar's quota check: one per process, counters shared by every request it serves."""

    def __init__(self, registry: CollectorRegistry, *, replicas: int, max_counters: int,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.replicas = max(1, replicas)
        self.counters = QuotaCounters(max_counters)
        self._clock = clock
        self.checks = Counter(
            "mcp_gateway_quota_checks",
            "Tool calls checked against a quota, by grant, per-key kind and result (admitted, exceeded, table_full)",
            ("grant", "per", "result"),
            registry=registry,
        )
        registry.register(_TableSize(lambda: len(self.counters)))
        self._children: dict[tuple[str, str, str], Any] = {}

    def limit(self, quota: CompiledQuota) -> int:
        """This replica's share of the quota's limit."""
        return math.ceil(quota.limit / self.replicas)

    def check(
        self, policy: CompiledPolicy, identity: Identity, decisions: list[tuple[jsonrpc.Message, Decision]]
    ) -> list[tuple[jsonrpc.Message, Decision]]:
        """Count the allowed tool calls of one request; returns the ones denied for a quota (and updates
        `decisions` in place). Observe mode: nothing is denied, the verdict goes to `would_deny_reason`.
        """
        index = policy.quotas
        if not index:
            return []
        wanted: list[tuple[CounterKey, int, float]] = []
        owners: list[tuple[int, CompiledQuota]] = []
        for pos, (msg, d) in enumerate(decisions):
            if not d.allowed or d.would_deny_reason or not d.matched_grant or not msg.is_tool_call:
                continue
            quotas = index.get((d.matched_grant_namespace, d.matched_grant))
            if not quotas:
                continue
            for q in quotas:
                if q.applies(msg.tool_name, d.required_side_effect):
                    ns, name, i = q.key
                    wanted.append(((ns, name, i, who(q, identity, d)), self.limit(q), q.window))
                    owners.append((pos, q))
        if not wanted:
            return []
        now = self._clock()
        over, retry, full = self.counters.admit(wanted, now)
        for exceeded, (_pos, q) in zip(over, owners, strict=True):
            self._count(q, "table_full" if full else "exceeded" if exceeded else "admitted")
        if not retry:
            return []
        seconds = str(max(1, math.ceil(retry)))
        observe = policy.doc.policy is not None and fold(policy.doc.policy.mode) == "observe"
        denied: list[tuple[jsonrpc.Message, Decision]] = []
        for pos in sorted({pos for exceeded, (pos, _q) in zip(over, owners, strict=True) if exceeded}):
            msg, d = decisions[pos]
            if observe:
                d.would_deny_reason = QUOTA_EXCEEDED
                continue
            verdict = dataclasses.replace(d, allowed=False, status=429, reason=QUOTA_EXCEEDED,
                                          extra={**d.extra, RETRY_AFTER: seconds})  # fmt: skip
            decisions[pos] = (msg, verdict)
            denied.append((msg, verdict))
        return denied

    def _count(self, q: CompiledQuota, result: str) -> None:
        key = (q.grant_label, q.per, result)
        ch = self._children.get(key)
        if ch is None:
            ch = self._children[key] = self.checks.labels(*key)
        ch.inc()
