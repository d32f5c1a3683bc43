"""Policy decision micro-benchmark: 10,000 grants, 1,000 sessions.

Run: `python -m bench.policy_decision` (or `./dev task bench:policy`).
Prints per-decision latency (p50/p99) of the compiled evaluator against a baseline measured in
the same run: a straightforward linear-scan evaluator of the same algorithm (below). Also times
`load_policy` (decode + validate + revision + compile) for the synthetic document, and the
decision plus the sidecar's quota check (`sidecar.quota`; half the grants carry quotas), which
is what the hot path runs per `tools/call`: the target applies to both.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import random
import time

from mcp_sentinel.policy import (
    AuthzRequest,
    CompiledPolicy,
    Decision,
    Grant,
    Identity,
    PolicyBlock,
    PolicyDocument,
    ServerInfo,
    SessionBinding,
    SessionBlock,
    Tool,
    ToolRule,
    compute_revision,
    load_policy,
    to_pretty_json,
)
from mcp_sentinel.policy.approvals import ApprovalIndex
from mcp_sentinel.policy.document import ApprovalRule, Quota
from mcp_sentinel.policy.normalize import fold, parse_rfc3339, risk_level, side_effect, trust_label, trust_rank

TARGET_P99_US = 20.0
NOW = 1_800_000_000.0
EFFECTS = ("read", "write", "destructive")
TRUSTS = ("low", "medium", "high")


def synthetic_document(n_grants: int = 10_000, n_sessions: int = 1_000, seed: int = 7) -> PolicyDocument:
    """A document shaped like a busy shared server: many humans/agents/teams, some rules, some sessions."""
    rnd = random.Random(seed)
    tools = tuple(
        Tool(name=f"tool_{i}", required_trust=TRUSTS[i % 3], side_effect=EFFECTS[(i // 3) % 3]) for i in range(60)
    )
    grants = []
    for i in range(n_grants):
        rules: tuple[ToolRule, ...] = ()
        if i % 4 == 0:
            rules = tuple(
                ToolRule(name=f"tool_{rnd.randrange(60)}", decision="deny" if rnd.random() < 0.1 else "allow",
                         required_trust=rnd.choice(TRUSTS))
                for _ in range(3)
            )
            rules = tuple({r.name: r for r in rules}.values())
        grants.append(Grant(
            name=f"grant-{i}", namespace=f"ns-{i % 50}",
            human_id=f"user-{i % 4000}", agent_id=f"agent-{i % 97}" if i % 3 else "", team_id=f"team-{i % 40}",
            max_trust=rnd.choice(TRUSTS), allowed_side_effects=tuple(rnd.sample(EFFECTS, rnd.randint(1, 3))),
            disabled=rnd.random() < 0.05, tool_rules=rules, quotas=_quotas(i, rnd),
            approval=ApprovalRule(side_effects=("destructive",), ttl_seconds=900) if i % 10 == 0 else None,
        ))
    sessions = tuple(
        SessionBinding(name=f"sess-{i}", namespace=f"ns-{i % 50}", human_id=f"user-{i * 4 % 4000}",
                       team_id=f"team-{i * 4 % 40}", consented_trust=rnd.choice(TRUSTS),
                       revoked=rnd.random() < 0.05, expires_at="2030-01-01T00:00:00Z" if i % 2 else "")
        for i in range(n_sessions)
    )
    doc = PolicyDocument(
        schema_version="v1", server=ServerInfo(name="bench", namespace="bench"),
        policy=PolicyBlock(mode="allow-list", default_decision="deny", policy_version="v1"),
        session=SessionBlock(required=False), tools=tools, grants=tuple(grants), sessions=sessions,
    )
    return dataclasses.replace(doc, revision=compute_revision(doc))


def _quotas(i: int, rnd: random.Random) -> tuple[Quota, ...]:
    """Half the grants are limited: writes per session, one tool per human, everything per agent."""
    if i % 2:
        return ()
    return (
        Quota(limit=rnd.choice((5, 100)), window_seconds=3600, per="session", side_effect="write"),
        Quota(limit=rnd.choice((3, 50)), window_seconds=60, per="human", tool=f"tool_{rnd.randrange(60)}"),
        Quota(limit=1000, window_seconds=86400, per="agent"),
    )


def requests(doc: PolicyDocument, n: int, seed: int = 11) -> list[AuthzRequest]:
    """Mixed traffic: grant holders (mostly allowed, some denied), session users, strangers, non-tool calls."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        roll = rnd.random()
        tool = f"tool_{rnd.randrange(64)}"  # a few names outside the inventory
        if roll < 0.6:
            g = rnd.choice(doc.grants)
            ident = Identity(g.human_id, g.agent_id, g.team_id)
        elif roll < 0.8:
            s = rnd.choice(doc.sessions)
            ident = Identity(s.human_id, "", s.team_id, s.name)
        elif roll < 0.95:
            ident = Identity(f"stranger-{rnd.randrange(100)}", "", "team-1")
        else:
            out.append(AuthzRequest(Identity(), "tools/list"))
            continue
        out.append(AuthzRequest(ident, "tools/call", tool))
    return out


class LinearEvaluator:
    """Baseline: the same §3.3 algorithm, scanning lists on every request (no indexes)."""

    def __init__(self, doc: PolicyDocument) -> None:
        self.doc = doc

    @staticmethod
    def _matches(h: str, a: str, t: str, ident: Identity, wildcard: bool) -> bool:
        if not (h or a or t):
            return wildcard
        return (not h or h == ident.human_id) and (not a or a == ident.agent_id) and (not t or t == ident.team_id)

    def authorize(self, req: AuthzRequest, now: float) -> Decision:
        doc = self.doc
        version = doc.policy.policy_version if doc.policy else ""
        if req.rpc_method not in ("tools/call", "call_tool"):
            # Handshake methods pass; every other method needs an identity (prompts/resources are not in
            # this bench's traffic).
            bare = not (req.identity.human_id or req.identity.agent_id or req.identity.team_id)
            if req.rpc_method in ("initialize", "ping", "server/discover") or not bare:
                return Decision(policy_version=version)
            return _deny(Decision(policy_version=version), 401, "missing_identity")
        required, effect, risk = 1, "", ""
        for tool in doc.tools:
            if tool.name == req.tool_name:
                required, effect = trust_rank(tool.required_trust), side_effect(tool.side_effect)
                risk = risk_level(tool.risk_level, effect, required)
                break
        d = Decision(policy_version=version, risk_level=risk)
        ident = req.identity
        if not (ident.human_id or ident.agent_id or ident.team_id):
            return _deny(d, 401, "missing_identity")
        session = None
        if ident.session_id:
            for s in sorted(doc.sessions, key=lambda s: (s.namespace, s.name)):
                if s.name == ident.session_id and self._matches(s.human_id, s.agent_id, s.team_id, ident, False):
                    session = s
                    break
        if session is not None:
            exp = parse_rfc3339(session.expires_at) if session.expires_at else None
            expired = bool(session.expires_at) and (exp is None or now >= exp)
            if session.revoked or expired:
                session = None
            else:
                d.matched_session, d.matched_session_namespace = session.name, session.namespace
        matching = sorted(
            (g for g in doc.grants if self._matches(g.human_id, g.agent_id, g.team_id, ident, True)),
            key=lambda g: (g.namespace, g.name),
        )
        if not matching:
            return _deny(d, 403, "no_matching_grant")
        covered = effect_ok = False
        attributed: Grant | None = None
        admin = 0
        for g in matching:
            if g.disabled:
                continue
            allows = effect != "" and effect in {side_effect(e) for e in g.allowed_side_effects}
            rule = None
            if g.tool_rules:
                rule = next((r for r in g.tool_rules if r.name == req.tool_name), None)
                if rule is None:
                    continue
                if fold(rule.decision) == "deny":
                    d.matched_grant, d.matched_grant_namespace = g.name, g.namespace
                    return _deny(d, 403, "tool_denied")
            covered = True
            attributed = attributed or g
            if allows:
                if not effect_ok or trust_rank(g.max_trust) > admin:
                    attributed = g
                effect_ok = True
                if rule is not None and trust_rank(rule.required_trust) > required:
                    required, attributed = trust_rank(rule.required_trust), g
                admin = max(admin, trust_rank(g.max_trust))
        if not covered or attributed is None:
            return _deny(d, 403, "tool_not_granted")
        d.matched_grant, d.matched_grant_namespace = attributed.name, attributed.namespace
        d.policy_version = attributed.policy_version or version
        d.required_trust = trust_label(required)
        if not effect:
            return _deny(d, 403, "tool_side_effect_unknown")
        d.required_side_effect = effect
        if not effect_ok:
            return _deny(d, 403, "side_effect_not_allowed")
        consented = trust_rank(session.consented_trust) if session and session.consented_trust else admin
        effective = min(admin, consented)
        d.admin_trust, d.consented_trust, d.effective_trust = trust_label(admin), trust_label(consented), trust_label(
            effective)
        if effective < required:
            return _deny(d, 403, "trust_too_low")
        return d


def _deny(d: Decision, status: int, reason: str) -> Decision:
    d.allowed, d.status, d.reason = False, status, reason
    return d


def _latencies(evaluator: CompiledPolicy | LinearEvaluator, reqs: list[AuthzRequest]) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    gc.collect()
    for req in reqs:
        start = clock()
        evaluator.authorize(req, NOW)
        out.append(clock() - start)
    out.sort()
    return out


def _quota_latencies(compiled: CompiledPolicy, reqs: list[AuthzRequest]) -> tuple[list[int], int]:
    """Decision plus quota check per request, as the sidecar runs them; and how many the quotas denied."""
    from prometheus_client import CollectorRegistry

    from mcp_sentinel import jsonrpc
    from sidecar.quota import QuotaGate

    gate = QuotaGate(CollectorRegistry(), replicas=1, max_counters=1_000_000)
    msgs = [jsonrpc.Message(kind="request", id=1, method=r.rpc_method, tool_name=r.tool_name, target=r.tool_name)
            for r in reqs]
    clock = time.perf_counter_ns
    out, denied = [], 0
    gc.collect()
    for req, msg in zip(reqs, msgs, strict=True):
        start = clock()
        d = compiled.authorize(req, NOW)
        if d.allowed:
            denied += len(gate.check(compiled, req.identity, [(msg, d)]))
        out.append(clock() - start)
    out.sort()
    return out, denied


def _gated_latencies(evaluator: CompiledPolicy, index: ApprovalIndex, reqs: list[AuthzRequest]) -> list[int]:
    """Decision plus the gateway's approval lookup for allowed calls (what sidecar/approval.py adds)."""
    clock = time.perf_counter_ns
    out = []
    gc.collect()
    for req in reqs:
        start = clock()
        d = evaluator.authorize(req, NOW)
        if d.allowed and req.tool_name:
            index.requirement(d.matched_grant_namespace, d.matched_grant, req.tool_name, d.required_side_effect)
        out.append(clock() - start)
    out.sort()
    return out


def _pct(sorted_ns: list[int], p: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(p / 100 * len(sorted_ns)))] / 1000.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--baseline-requests", type=int, default=300)
    args = parser.parse_args(argv)

    doc = synthetic_document()
    text = to_pretty_json(doc)
    start = time.perf_counter()
    compiled = load_policy(text)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    CompiledPolicy(compiled.doc)
    compile_s = time.perf_counter() - start

    reqs = requests(doc, args.requests)
    baseline = LinearEvaluator(compiled.doc)
    sample = reqs[: args.baseline_requests]
    mismatches = [r for r in sample if baseline.authorize(r, NOW) != compiled.authorize(r, NOW)]
    _latencies(compiled, reqs[:2000])  # warm-up
    fast = _latencies(compiled, reqs)
    slow = _latencies(baseline, sample)
    with_quotas, quota_denied = _quota_latencies(compiled, reqs)
    index = ApprovalIndex(compiled.doc)
    gated = _gated_latencies(compiled, index, reqs)
    decisions = [compiled.authorize(r, NOW) for r in reqs]
    held = sum(1 for r, d in zip(reqs, decisions, strict=True) if d.allowed and r.tool_name and index.requirement(
        d.matched_grant_namespace, d.matched_grant, r.tool_name, d.required_side_effect))
    allowed = sum(d.allowed for d in decisions)

    print(f"document: {len(doc.grants)} grants, {len(doc.sessions)} sessions, {len(doc.tools)} tools, "
          f"{len(text) / 1e6:.1f} MB policy.json")
    print(f"load_policy (decode+validate+revision+compile): {load_s * 1000:.0f} ms; compile only: "
          f"{compile_s * 1000:.0f} ms")
    print(f"traffic: {len(reqs)} requests, {allowed / len(reqs):.0%} allowed, "
          f"{len({d.reason for d in decisions})} distinct reasons")
    print(f"compiled evaluator: p50 {_pct(fast, 50):.1f} us  p99 {_pct(fast, 99):.1f} us  max {fast[-1] / 1000:.0f} us")
    print(f"+ approval lookup : p50 {_pct(gated, 50):.1f} us  p99 {_pct(gated, 99):.1f} us  "
          f"({held} calls held for approval)")
    print(f"linear baseline   : p50 {_pct(slow, 50):.1f} us  p99 {_pct(slow, 99):.1f} us  ({len(sample)} requests)")
    p50_ratio, p99_ratio = _pct(slow, 50) / _pct(fast, 50), _pct(slow, 99) / _pct(fast, 99)
    print(f"ratio baseline/compiled: p50 x{p50_ratio:.0f}  p99 x{p99_ratio:.0f}")
    print(f"decision + quota check: p50 {_pct(with_quotas, 50):.1f} us  p99 {_pct(with_quotas, 99):.1f} us  "
          f"({len(compiled.quotas)} grants with quotas; {quota_denied} calls over a quota)")
    met = max(_pct(fast, 99), _pct(with_quotas, 99), _pct(gated, 99)) <= TARGET_P99_US
    print(f"target p99 <= {TARGET_P99_US:.0f} us: {'MET' if met else 'NOT MET'}")
    if mismatches:
        print(f"WARNING: {len(mismatches)} decisions differ between baseline and compiled evaluator")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
