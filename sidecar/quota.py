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

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.normalize import fold
from mcp_sentinel.policy.quotas import CompiledQuota
from mcp_sentinel.policy.reasons import QUOTA_EXCEEDED
from mcp_sentinel.policy.types import TOOL_CALL_METHODS, Decision, Identity

CounterKey = tuple[str, str, int, str]
"""(grant namespace, grant name, quota index, who): one counter."""

RETRY_AFTER = "retryAfterSeconds"
"""The `Decision.extra` key (and JSON-RPC `error.data` key) carrying whole seconds until a retry can pass."""


class QuotaCounters:
    """Fixed windows per key, anchored at the key's first counted call; all-or-nothing admission.

    Window starts and counts live in two dicts of floats and ints (no per-key container objects:
    a million live counters must not slow down the garbage collector), window ends in a heap.
    """

    def __init__(self, max_counters: int) -> None:
        self.max_counters = max_counters
        self._start: dict[CounterKey, float] = {}
        self._used: dict[CounterKey, int] = {}
        self._ends: list[tuple[float, CounterKey, float]] = []  # (window end, key, window start)

    def __len__(self) -> int:
        return len(self._start)

    def _expire(self, now: float) -> None:
        ends, start_of = self._ends, self._start
        while ends and ends[0][0] <= now:
            _end, key, start = heapq.heappop(ends)
            if start_of.get(key) == start:
                del start_of[key], self._used[key]

    def admit(self, wanted: list[tuple[CounterKey, int, float]], now: float) -> tuple[list[bool], float, bool]:
        """Count one call against every (key, limit, window) of `wanted`, or against none of them.

        Returns per item whether it was refused, the seconds until a retry can pass (0.0 when all
        were admitted and counted), and whether the refusal is the full table rather than a limit.
        The same key may appear several times (a batch of calls): each occurrence counts once.
        """
        ends = self._ends
        if ends and ends[0][0] <= now:
            self._expire(now)
        start_of, used_of = self._start, self._used
        over = [False] * len(wanted)
        refused = False
        retry = 0.0
        fresh = 0
        pending: dict[CounterKey, int] = {}
        for i, (key, limit, window) in enumerate(wanted):
            n = pending[key] = pending.get(key, 0) + 1
            start = start_of.get(key)
            if start is not None and now < start + window:
                used = used_of[key]
            else:
                used, start = 0, now
                fresh += n == 1
            if used + n > limit:
                over[i] = refused = True
                retry = max(retry, min(start + window - now, window))  # min: float rounding
        if refused:
            return over, retry, False
        if fresh and len(start_of) + fresh > self.max_counters:
            # Full table (many keys with long windows): fail closed until the earliest window ends.
            soonest = ends[0][0] - now if ends else 1.0
            return [True] * len(wanted), max(soonest, 0.001), True
        for key, _limit, window in wanted:
            start = start_of.get(key)
            if start is not None and now < start + window:
                used_of[key] += 1
            else:
                start_of[key], used_of[key] = now, 1
                heapq.heappush(ends, (now + window, key, now))
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


_PER = ("session", "agent", "human")
_RESULTS = ("admitted", "exceeded", "table_full")


class _QuotaCollector(Collector):
    """Exported at scrape time from plain ints: a prometheus Counter's lock per check costs the hot path."""

    def __init__(self, gate: QuotaGate) -> None:
        self._gate = gate

    def collect(self) -> Iterator[Any]:
        checks = CounterMetricFamily(
            "mcp_gateway_quota_checks",
            "Tool calls checked against a quota, by per-key kind and result (admitted, exceeded, table_full)",
            labels=["per", "result"],
        )
        for (per, result), n in sorted(self._gate.checks.items()):
            checks.add_metric([per, result], n)
        yield checks
        yield GaugeMetricFamily("mcp_gateway_quota_counters", "Live quota counters (keys with an open window)",
                                len(self._gate.counters))  # fmt: skip


class QuotaGate:
    """The sidecar's quota check: one per process, counters shared by every request it serves."""

    def __init__(self, registry: CollectorRegistry, *, replicas: int, max_counters: int,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.replicas = max(1, replicas)
        self.counters = QuotaCounters(max_counters)
        self._clock = clock
        # Labels bounded by constants (not by grants or callers): which grant and who are in the audit events.
        self.checks: dict[tuple[str, str], int] = {(per, result): 0 for per in _PER for result in _RESULTS}
        registry.register(_QuotaCollector(self))

    def limit(self, quota: CompiledQuota) -> int:
        """This replica's share of the quota's limit."""
        return -(-quota.limit // self.replicas)  # ceil without floats

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
        replicas = self.replicas
        for pos, (msg, d) in enumerate(decisions):
            if not d.allowed or d.would_deny_reason or not d.matched_grant or msg.method not in TOOL_CALL_METHODS:
                continue
            quotas = index.get((d.matched_grant_namespace, d.matched_grant))
            if quotas is None:
                continue
            tool, effect = msg.tool_name, d.required_side_effect
            for q in quotas:
                if (q.tool and q.tool != tool) or (q.side_effect and q.side_effect != effect):
                    continue  # CompiledQuota.applies, inlined: this loop is on the hot path
                wanted.append(((*q.key, who(q, identity, d)), -(-q.limit // replicas), q.window))
                owners.append((pos, q))
        if not wanted:
            return []
        over, retry, full = self.counters.admit(wanted, self._clock())
        checks = self.checks
        if not retry:
            for _pos, q in owners:
                checks[q.per, "admitted"] += 1
            return []
        for exceeded, (_pos, q) in zip(over, owners, strict=True):
            checks[q.per, "table_full" if full else "exceeded" if exceeded else "admitted"] += 1
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
