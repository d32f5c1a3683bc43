"""Grant quotas against real sidecar processes in front of the permissive upstream (issue 18.1).

A loop over a quota is cut at the limit and resumes after the window; per-session, per-agent and per-human
counters are separate; tool- and side-effect-scoped quotas count only their calls; a batch over
the quota is refused whole; made-up session ids do not escape a per-session quota; two replicas
with QUOTA_REPLICAS=2 each enforce half the limit (rounded up). The upstream records what got
past the gateway, so "denied" is proven by what it never saw.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localstack.config import Ports, free_port
from mcp_sentinel.policy import (
    AuthBlock,
    Grant,
    PolicyBlock,
    PolicyDocument,
    ServerInfo,
    SessionBinding,
    SessionBlock,
    Tool,
    compute_revision,
    to_pretty_json,
)
from mcp_sentinel.policy.document import Quota
from tests.fixtures.sidecar import SidecarProcess
from tests.helpers.permissive import JSON_HDRS, Upstream, _LoopThread

WINDOW = 2  # seconds: the loop test's window (short, so "resumes after the window" is observed)
LONG = 600  # the other quotas' window: never rolls over during a test


def _grant(name: str, *, human: str = "", agent: str = "", quotas: tuple[Quota, ...]) -> Grant:
    return Grant(name=name, namespace="ns", human_id=human, agent_id=agent, max_trust="high",
                 allowed_side_effects=("read", "write", "destructive"), quotas=quotas)


def policy_document(mode: str = "allow-list") -> PolicyDocument:
    """Header mode; one grant per scenario so the scenarios' counters never meet."""
    doc = PolicyDocument(
        schema_version="v1",
        server=ServerInfo(name="quotas", namespace="ns"),
        auth=AuthBlock(mode="header"),
        policy=PolicyBlock(mode=mode, default_decision="deny", policy_version="v1"),
        session=SessionBlock(required=False),
        tools=(Tool(name="search", side_effect="read"), Tool(name="fetch", side_effect="read"),
               Tool(name="save", side_effect="write"), Tool(name="wipe", side_effect="destructive")),
        grants=(
            _grant("looper", human="looper", quotas=(Quota(limit=3, window_seconds=WINDOW, per="session",
                                                           side_effect="write"),)),
            # Any human using quota-agent: writes per session, searches per human.
            _grant("team", agent="quota-agent", quotas=(
                Quota(limit=2, window_seconds=LONG, per="session", side_effect="write"),
                Quota(limit=3, window_seconds=LONG, per="human", tool="search"),
            )),
            _grant("batch", human="batcher", quotas=(Quota(limit=2, window_seconds=LONG, per="human"),)),
            _grant("prop", agent="prop-agent", quotas=(
                Quota(limit=4, window_seconds=LONG, per="human", side_effect="write"),
                Quota(limit=2, window_seconds=LONG, per="human", tool="fetch"),
            )),
            _grant("agents", human="multi", quotas=(Quota(limit=2, window_seconds=LONG, per="agent"),)),
            _grant("fleet", agent="fleet-agent", quotas=(Quota(limit=5, window_seconds=LONG, per="human"),)),
        ),
        sessions=(
            SessionBinding(name="loop-1", namespace="ns", human_id="looper"),
            SessionBinding(name="a-1", namespace="ns", human_id="alice"),
            SessionBinding(name="a-2", namespace="ns", human_id="alice"),
        ),
    )
    return dataclasses.replace(doc, revision=compute_revision(doc))


@dataclass
class Gateway:
    """One sidecar process: its URLs and audit spool."""

    url: str
    metrics_url: str
    spool: Path
    proc: SidecarProcess

    def audit(self) -> list[dict[str, Any]]:
        lines = [ln for seg in sorted(self.spool.glob("seg-*.jsonl")) for ln in seg.read_bytes().splitlines()]
        return [json.loads(ln)["data"] for ln in lines if ln.strip()]

    def metric(self, name: str, **labels: str) -> float:
        text = httpx2.get(self.metrics_url, timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@dataclass
class Rig:
    upstream: Upstream
    one: Gateway  # QUOTA_REPLICAS unset (1)
    pair: tuple[Gateway, Gateway]  # QUOTA_REPLICAS=2 each
    observe: Gateway  # the same grants in observe mode

    def executed(self, human: str, tool: str | None = None) -> int:
        """How many tools/call of `human` (of `tool`) the upstream executed (`call` names the caller in them)."""
        n = 0
        for _verb, msg in self.upstream.seen:
            params = msg.get("params") or {}
            if msg.get("method") == "tools/call" and (params.get("arguments") or {}).get("caller") == human:
                n += tool is None or params.get("name") == tool
        return n


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("quotas")
    ports = Ports.free()
    upstream = Upstream()
    served = _LoopThread(upstream.app(), ports.sample_mcp)
    policy, observe = tmp / "policy.json", tmp / "observe.json"
    policy.write_text(to_pretty_json(policy_document()))
    observe.write_text(to_pretty_json(policy_document("observe")))
    started: list[Gateway] = []

    def gateway(name: str, policy: Path = policy, **extra: str) -> Gateway:
        port, metrics = free_port(), free_port()
        env = {"PORT": str(port), "METRICS_PORT": str(metrics), "LISTEN_HOST": "127.0.0.1",
               "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}", "POLICY_FILE": str(policy),
               "AUDIT_SPOOL_DIR": str(tmp / f"spool-{name}"), **extra}
        gw = Gateway(f"http://127.0.0.1:{port}/mcp", f"http://127.0.0.1:{metrics}/metrics", tmp / f"spool-{name}",
                     SidecarProcess(env, tmp / f"{name}.log"))
        started.append(gw)
        return gw

    try:
        one = gateway("one")
        pair = (gateway("r1", QUOTA_REPLICAS="2"), gateway("r2", QUOTA_REPLICAS="2"))
        yield Rig(upstream, one, pair, gateway("observe", observe))
    finally:
        for gw in started:
            gw.proc.stop()
        served.stop()


_ids = itertools.count(1)


def call(gw: Gateway, human: str, tool: str, *, agent: str = "", session: str = "") -> httpx2.Response:
    headers = {**JSON_HDRS, "X-MCP-Human-ID": human}
    if agent:
        headers["X-MCP-Agent-ID"] = agent
    if session:
        headers["X-MCP-Agent-Session"] = session
    params = {"name": tool, "arguments": {"caller": human}}
    body = {"jsonrpc": "2.0", "id": next(_ids), "method": "tools/call", "params": params}
    return httpx2.post(gw.url, json=body, headers=headers, timeout=30)


def _quota_denial(resp: httpx2.Response) -> dict[str, Any]:
    assert resp.status_code == 429, resp.text
    err = resp.json()["error"]
    assert err["data"]["reason"] == "quota_exceeded"
    assert resp.headers["Retry-After"] == str(err["data"]["retryAfterSeconds"])
    return dict(err["data"])


def test_a_loop_over_a_quota_is_cut_at_the_limit_and_resumes_after_the_window(rig: Rig) -> None:
    gw = rig.one
    started = time.monotonic()
    results = []
    for _ in range(6):
        resp = call(gw, "looper", "save", session="loop-1")
        results.append(resp.status_code)
        if resp.status_code != 200:
            break
    assert results == [200, 200, 200, 429]
    data = _quota_denial(resp)
    assert 1 <= data["retryAfterSeconds"] <= WINDOW and data["tool"] == "save"
    assert rig.executed("looper") == 3  # the 4th never reached the upstream

    deadline = time.monotonic() + 30
    while (resp := call(gw, "looper", "save", session="loop-1")).status_code == 429:
        assert time.monotonic() < deadline, "the quota never reset"
        time.sleep(0.1)
    assert resp.status_code == 200
    assert time.monotonic() - started >= WINDOW - 0.05  # not before the window (anchored at the first call) ended
    assert rig.executed("looper") == 4

    denials = [e for e in gw.audit() if e.get("human_id") == "looper" and e["decision"] == "deny"]
    assert denials and all(e["reason"] == "quota_exceeded" and e["status"] == 429 for e in denials)
    first = denials[0]
    assert (first["tool_name"], first["matched_grant"], first["matched_session"]) == ("save", "looper", "loop-1")
    assert gw.metric("mcp_gateway_quota_checks_total", per="session", result="exceeded") >= 1
    assert gw.metric("mcp_gateway_quota_checks_total", per="session", result="admitted") >= 4
    assert gw.metric("mcp_gateway_policy_decisions_total", reason="quota_exceeded") >= 1
    assert "loop-1" not in httpx2.get(gw.metrics_url, timeout=10).text  # no per-session labels


def test_per_session_quotas_count_each_session_and_per_human_quotas_count_across_them(rig: Rig) -> None:
    gw = rig.one
    # Writes: 2 per session. Session a-1 is cut at 2; a-2 has its own 2.
    assert [call(gw, "alice", "save", agent="quota-agent", session="a-1").status_code for _ in range(3)] == [
        200, 200, 429]
    assert [call(gw, "alice", "save", agent="quota-agent", session="a-2").status_code for _ in range(3)] == [
        200, 200, 429]
    # Searches: 3 per human, whichever session they come from.
    codes = [call(gw, "alice", "search", agent="quota-agent", session=s).status_code for s in ("a-1", "a-2", "a-1")]
    assert codes == [200, 200, 200]
    _quota_denial(call(gw, "alice", "search", agent="quota-agent", session="a-2"))
    # Another human under the same grant has counters of their own.
    assert call(gw, "dave", "search", agent="quota-agent").status_code == 200
    assert rig.executed("alice", "save") == 4 and rig.executed("alice", "search") == 3


def test_tool_and_side_effect_scoped_quotas_count_only_their_calls(rig: Rig) -> None:
    gw = rig.one
    for _ in range(3):
        assert call(gw, "erin", "search", agent="quota-agent").status_code == 200
    _quota_denial(call(gw, "erin", "search", agent="quota-agent"))
    # `fetch` is read too, but the search quota names its tool: fetch is not limited.
    assert [call(gw, "erin", "fetch", agent="quota-agent").status_code for _ in range(5)] == [200] * 5
    # `wipe` is destructive: the write quota does not count it; `save` (write) still has its 2.
    assert [call(gw, "erin", "wipe", agent="quota-agent").status_code for _ in range(4)] == [200] * 4
    assert [call(gw, "erin", "save", agent="quota-agent").status_code for _ in range(3)] == [200, 200, 429]


def test_per_agent_quotas_count_each_agent_of_the_person(rig: Rig) -> None:
    gw = rig.one
    assert [call(gw, "multi", "save", agent="agent-1").status_code for _ in range(3)] == [200, 200, 429]
    assert [call(gw, "multi", "search", agent="agent-2").status_code for _ in range(3)] == [200, 200, 429]
    _quota_denial(call(gw, "multi", "fetch", agent="agent-1"))  # no tool or side effect named: every call counts
    assert rig.executed("multi") == 4


def test_fresh_session_ids_do_not_escape_a_per_session_quota(rig: Rig) -> None:
    # Only a session the policy binds has a counter of its own; made-up ids count as "this caller, no session".
    gw = rig.one
    codes = [call(gw, "rotator", "save", agent="quota-agent", session=f"made-up-{i}").status_code for i in range(3)]
    assert codes == [200, 200, 429]
    assert rig.executed("rotator") == 2


def test_a_batch_over_the_quota_is_refused_whole_and_counts_nothing(rig: Rig) -> None:
    gw = rig.one
    assert call(gw, "batcher", "save").status_code == 200  # 1 of 2 used
    batch = [{"jsonrpc": "2.0", "id": i, "method": "tools/call",
              "params": {"name": "save", "arguments": {"caller": "batcher"}}}
             for i in (1, 2)]
    resp = httpx2.post(gw.url, json=batch, headers={**JSON_HDRS, "X-MCP-Human-ID": "batcher"}, timeout=30)
    assert resp.status_code == 429
    errors = {e["id"]: e["error"]["data"]["reason"] for e in resp.json()}
    assert errors == {1: "batch_rejected", 2: "quota_exceeded"}  # only the second is over; neither ran
    assert int(resp.headers["Retry-After"]) >= 1
    assert rig.executed("batcher") == 1
    assert call(gw, "batcher", "save").status_code == 200  # the refused batch took nothing
    _quota_denial(call(gw, "batcher", "save"))


_humans = itertools.count(1)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tools=st.lists(st.sampled_from(["save", "fetch", "search"]), min_size=1, max_size=12))
def test_property_the_real_gateway_admits_exactly_the_limit_per_window(rig: Rig, tools: list[str]) -> None:
    """Whatever the sequence: writes are cut at 4, fetches at 2, searches never; nothing denied ran."""
    human = f"prop-{next(_humans)}"  # fresh counters per example (per-human quotas)
    allowed: dict[str, int] = {"save": 0, "fetch": 0, "search": 0}
    limits = {"save": 4, "fetch": 2, "search": len(tools)}
    for tool in tools:
        resp = call(rig.one, human, tool, agent="prop-agent")
        if allowed[tool] < limits[tool]:
            assert resp.status_code == 200, resp.text
            allowed[tool] += 1
        else:
            _quota_denial(resp)
    for tool, n in allowed.items():
        assert rig.executed(human, tool) == n


def test_two_replicas_split_the_limit(rig: Rig) -> None:
    # limit 5 with QUOTA_REPLICAS=2: each replica admits ceil(5/2) = 3, so the fleet admits 6 (< limit + replicas).
    r1, r2 = rig.pair
    assert [call(r1, "fleet-user", "save", agent="fleet-agent").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [call(r2, "fleet-user", "save", agent="fleet-agent").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert rig.executed("fleet-user") == 6
    # Alternating (a round-robin balancer): still 3 per replica.
    codes = [call(gw, "fleet-user-2", "save", agent="fleet-agent").status_code for gw in (r1, r2) * 4]
    assert codes.count(200) == 6 and codes[-2:] == [429, 429]
    # The single-replica gateway enforces the whole limit.
    assert [call(rig.one, "fleet-user", "save", agent="fleet-agent").status_code for _ in range(6)] == [200] * 5 + [429]


def test_observe_mode_forwards_over_quota_calls_and_reports_them(rig: Rig) -> None:
    gw = rig.observe
    assert [call(gw, "batcher", "save").status_code for _ in range(3)] == [200] * 3  # the limit is 2
    events = [e for e in gw.audit() if e.get("human_id") == "batcher" and e.get("tool_name") == "save"]
    assert [e.get("would_deny_reason", "") for e in events] == ["", "", "quota_exceeded"]
    assert all(e["decision"] == "allow" for e in events)
