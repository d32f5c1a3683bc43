"""The quota counters and gate in-process, on a controlled clock (the real classes; the clock is the only input).

Real-process behaviour (HTTP 429, Retry-After, audit, replicas) is in test_quotas.py.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy import AuthzRequest, CompiledPolicy, Decision, Identity, compute_revision
from mcp_sentinel.policy.document import Grant, PolicyBlock, PolicyDocument, Quota, ServerInfo, SessionBinding, Tool
from sidecar.quota import RETRY_AFTER, QuotaCounters, QuotaGate, who
from sidecar.settings import SettingsError, SidecarSettings

KEY = ("ns", "g", 0, "s1")


def test_counts_up_to_the_limit_then_refuses_with_the_time_left() -> None:
    c = QuotaCounters(max_counters=10)
    for t in (100.0, 100.5, 101.0):
        assert c.admit([(KEY, 3, 2.0)], t) == ([False], 0.0, False)
    over, retry, full = c.admit([(KEY, 3, 2.0)], 101.5)
    assert over == [True] and not full
    assert retry == pytest.approx(0.5)  # the window opened at 100.0 and ends at 102.0
    assert c.admit([(KEY, 3, 2.0)], 102.0) == ([False], 0.0, False)  # a new window


def test_a_refused_call_counts_nowhere_all_or_nothing() -> None:
    c = QuotaCounters(max_counters=10)
    a, b = ("ns", "g", 0, "x"), ("ns", "g", 1, "x")
    assert c.admit([(a, 1, 10.0), (b, 5, 10.0)], 0.0)[0] == [False, False]
    over, _retry, _full = c.admit([(a, 1, 10.0), (b, 5, 10.0)], 1.0)
    assert over == [True, False]
    for t in range(4):  # b still has 4 left: the refused call above took none of them
        assert c.admit([(b, 5, 10.0)], 2.0 + t)[0] == [False]
    assert c.admit([(b, 5, 10.0)], 7.0)[0] == [True]


def test_the_same_key_twice_in_one_admission_counts_twice() -> None:
    c = QuotaCounters(max_counters=10)
    over, retry, _ = c.admit([(KEY, 1, 5.0), (KEY, 1, 5.0)], 0.0)
    assert over == [False, True] and retry == pytest.approx(5.0)
    assert len(c) == 0  # nothing was counted
    assert c.admit([(KEY, 1, 5.0)], 0.0)[0] == [False]


def test_expired_windows_leave_the_table() -> None:
    c = QuotaCounters(max_counters=100)
    for i in range(50):
        c.admit([(("ns", "g", 0, f"s{i}"), 1, 1.0 + i % 3)], 0.0)
    assert len(c) == 50
    c.admit([(KEY, 1, 1.0)], 3.0)  # every earlier window has ended by t=3
    assert len(c) == 1


def test_a_full_table_fails_closed_until_the_earliest_window_ends() -> None:
    c = QuotaCounters(max_counters=2)
    c.admit([(("ns", "g", 0, "a"), 5, 10.0)], 0.0)
    c.admit([(("ns", "g", 0, "b"), 5, 30.0)], 1.0)
    over, retry, full = c.admit([(("ns", "g", 0, "c"), 5, 10.0)], 2.0)
    assert over == [True] and full and retry == pytest.approx(8.0)
    assert c.admit([(("ns", "g", 0, "a"), 5, 10.0)], 2.0)[0] == [False]  # existing keys keep counting
    assert c.admit([(("ns", "g", 0, "c"), 5, 10.0)], 10.0)[0] == [False]  # "a" ended: room again


class _Model:
    """The documented semantics, written the obvious way: per key, a window opened by its first call."""

    def __init__(self) -> None:
        self.start: dict[tuple[str, str, int, str], float] = {}
        self.used: dict[tuple[str, str, int, str], int] = defaultdict(int)

    def admit(self, key: tuple[str, str, int, str], limit: int, window: float, now: float) -> bool:
        if key not in self.start or now >= self.start[key] + window:
            self.start[key], self.used[key] = now, 0
        if self.used[key] >= limit:
            return False
        self.used[key] += 1
        return True


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 5),
    window=st.sampled_from([1.0, 2.0, 7.5]),
    steps=st.lists(st.tuples(st.floats(0, 3, allow_nan=False), st.integers(0, 2)), min_size=1, max_size=80),
)
def test_property_never_more_than_limit_per_window_and_cut_exactly_at_it(
    limit: int, window: float, steps: list[tuple[float, int]]
) -> None:
    c, model = QuotaCounters(max_counters=1000), _Model()
    now = 0.0
    admitted: dict[int, list[float]] = defaultdict(list)
    for dt, caller in steps:
        now += dt
        key = ("ns", "g", 0, f"w{caller}")
        over, retry, full = c.admit([(key, limit, window)], now)
        assert not full
        assert (not over[0]) == model.admit(key, limit, window, now)  # refused exactly when the model refuses
        if over[0]:
            assert 0 < retry <= window
            now += retry + 1e-9  # (the gateway rounds up to whole seconds; here only float rounding is absorbed)
            assert c.admit([(key, limit, window)], now)[0] == [False]  # the promised time is enough
            model.admit(key, limit, window, now)
            admitted[caller].append(now)
        else:
            admitted[caller].append(now)
    for times in admitted.values():  # windows anchored at first calls: at most `limit` in each
        i = 0
        while i < len(times):
            inside = [t for t in times[i:] if t < times[i] + window]
            assert len(inside) <= limit
            i += len(inside)


TOOLS = (Tool(name="search", side_effect="read"), Tool(name="save", side_effect="write"))


def _policy(mode: str = "allow-list", quotas: tuple[Quota, ...] = ()) -> CompiledPolicy:
    doc = PolicyDocument(
        schema_version="v1",
        server=ServerInfo(name="srv", namespace="ns"),
        policy=PolicyBlock(mode=mode, default_decision="deny", policy_version="v1"),
        tools=TOOLS,
        grants=(Grant(name="g", namespace="ns", human_id="alice", max_trust="low",
                      allowed_side_effects=("read", "write"), quotas=quotas),),
        sessions=(SessionBinding(name="s1", namespace="ns", human_id="alice"),),
    )
    return CompiledPolicy(dataclasses.replace(doc, revision=compute_revision(doc)))


def _call(policy: CompiledPolicy, gate: QuotaGate, ident: Identity, tool: str = "save") -> list[Decision]:
    msg = jsonrpc.Message(kind="request", id=1, method="tools/call", tool_name=tool, target=tool)
    decisions = [(msg, policy.authorize(AuthzRequest(ident, "tools/call", tool), 0.0))]
    gate.check(policy, ident, decisions)
    return [d for _m, d in decisions]


def _gate(replicas: int = 1, clock: list[float] | None = None) -> QuotaGate:
    t = clock if clock is not None else [0.0]
    return QuotaGate(CollectorRegistry(), replicas=replicas, max_counters=100, clock=lambda: t[0])


def test_gate_denies_with_attribution_kept_and_retry_after_in_whole_seconds() -> None:
    clock = [50.0]
    policy, gate = _policy(quotas=(Quota(limit=1, window_seconds=60, per="session"),)), _gate(clock=clock)
    ident = Identity(human_id="alice", session_id="s1")
    assert _call(policy, gate, ident)[0].allowed
    clock[0] = 50.2
    (d,) = _call(policy, gate, ident)
    assert (d.allowed, d.status, d.reason) == (False, 429, "quota_exceeded")
    assert d.matched_grant == "g" and d.matched_session == "s1"
    assert d.extra[RETRY_AFTER] == "60"  # 59.8 s left, rounded up


def test_unbound_session_ids_count_as_the_callers_own_bucket() -> None:
    # Per-session counts the *matched* binding: made-up session ids are all "this caller, no session".
    policy, gate = _policy(quotas=(Quota(limit=2, window_seconds=60, per="session"),)), _gate()
    results = [_call(policy, gate, Identity(human_id="alice", session_id=f"made-up-{i}"))[0] for i in range(3)]
    assert [d.allowed for d in results] == [True, True, False]
    assert _call(policy, gate, Identity(human_id="alice", session_id="s1"))[0].allowed  # a bound session: its own
    other = Identity(human_id="alice", agent_id="other-agent")  # another caller without a session: its own too
    assert _call(policy, gate, other)[0].allowed


def test_who_falls_back_to_the_whole_identity_when_the_named_part_is_missing() -> None:
    (q_session,) = _policy(quotas=(Quota(limit=1, window_seconds=1, per="session"),)).quotas[("ns", "g")]
    (q_agent,) = _policy(quotas=(Quota(limit=1, window_seconds=1, per="agent"),)).quotas[("ns", "g")]
    (q_human,) = _policy(quotas=(Quota(limit=1, window_seconds=1, per="human"),)).quotas[("ns", "g")]
    bound = Decision(matched_session="s1", matched_session_namespace="ns")
    ident = Identity(human_id="h", agent_id="a", team_id="t")
    assert who(q_session, ident, bound) == "ns/s1"
    assert who(q_agent, ident, bound) == "a" and who(q_human, ident, bound) == "h"
    whole = "\x00h\x00a\x00t"
    assert who(q_session, ident, Decision()) == whole
    assert who(q_agent, Identity(human_id="h", team_id="t"), Decision()) == "\x00h\x00\x00t"
    assert who(q_human, Identity(agent_id="a"), Decision()) == "\x00\x00a\x00"


def test_observe_mode_reports_but_does_not_deny() -> None:
    policy, gate = _policy(mode="observe", quotas=(Quota(limit=1, window_seconds=60, per="human"),)), _gate()
    ident = Identity(human_id="alice")
    _call(policy, gate, ident)
    (d,) = _call(policy, gate, ident)
    assert d.allowed and d.would_deny_reason == "quota_exceeded"


def test_replicas_split_the_limit_rounding_up() -> None:
    q = Quota(limit=5, window_seconds=60, per="human")
    policy = _policy(quotas=(q,))
    (compiled,) = policy.quotas[("ns", "g")]
    assert [_gate(r).limit(compiled) for r in (1, 2, 3, 5, 8)] == [5, 3, 2, 1, 1]


def test_denied_and_unrelated_calls_are_not_counted() -> None:
    policy, gate = _policy(quotas=(Quota(limit=1, window_seconds=60, per="human", side_effect="write"),)), _gate()
    bob = Identity(human_id="bob")  # no grant: denied by the evaluator, never reaches a counter
    assert not _call(policy, gate, bob)[0].allowed
    alice = Identity(human_id="alice")
    assert all(_call(policy, gate, alice, "search")[0].allowed for _ in range(3))
    assert len(gate.counters) == 0
    assert _call(policy, gate, alice)[0].allowed


@pytest.mark.parametrize(("name", "value", "message"), [
    ("QUOTA_REPLICAS", "0", "QUOTA_REPLICAS must be >= 1"),
    ("QUOTA_REPLICAS", "two", "QUOTA_REPLICAS must be an integer"),
    ("QUOTA_MAX_COUNTERS", "0", "QUOTA_MAX_COUNTERS must be >= 1"),
])
def test_bad_quota_settings_refuse_to_start(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        SidecarSettings.from_env({name: value})


def test_quota_settings_are_read() -> None:
    s = SidecarSettings.from_env({"QUOTA_REPLICAS": "3", "QUOTA_MAX_COUNTERS": "42"})
    assert (s.quota_replicas, s.quota_max_counters) == (3, 42)
