"""The evaluator: every reason string, 401 vs 403, attribution and policy_version (upstream §3)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mcp_sentinel.policy import CompiledPolicy, Grant, Identity, Prompt, Resource, Tool, ToolRule, load_policy
from mcp_sentinel.policy.reasons import EVALUATOR_REASONS, GRANT_WITHOUT_TRUST
from tests.helpers.policy_builders import NOW, ask, doc, grant, session

PAYMENTS = Path(__file__).with_name("payments_example.json")
TEAM = "7d0a0b8f-7c25-4761-a632-3cf0108e31d6"
PAY = {"h": "user-123", "a": "ops-agent", "t": TEAM}
BEFORE_PAYMENTS_EXPIRY = 1774526400.0 - 60  # 2026-03-26T11:59:00Z


@pytest.fixture(scope="module")
def payments() -> CompiledPolicy:
    return load_policy(PAYMENTS.read_bytes())


def test_handshake_methods_are_allowed_without_identity(payments: CompiledPolicy) -> None:
    for method in ("initialize", "ping", "server/discover", "notifications/initialized"):
        d = ask(payments, "refund_invoice", method=method)
        assert (d.allowed, d.status, d.reason, d.policy_version) == (True, 200, "allowed", "v1")
        assert d.decision == "allow"


def test_every_other_method_needs_an_identity(payments: CompiledPolicy) -> None:
    # Deliberate change from upstream (docs/decisions/sidecar.md, "Gateway coverage"): listing, reading and any
    # unknown method (a mis-cased "Tools/Call" too) is refused to a caller with no identity.
    for method in ("tools/list", "Tools/Call", "resources/read", "prompts/get", "sampling/whatever"):
        d = ask(payments, "refund_invoice", method=method)
        assert (d.allowed, d.status, d.reason) == (False, 401, "missing_identity"), method
    d = ask(payments, "refund_invoice", method="tools/list", **PAY)
    assert (d.allowed, d.reason) == (True, "allowed")


def test_payments_allowed_with_full_attribution(payments: CompiledPolicy) -> None:
    d = ask(payments, "list_invoices", s="sess-8f1b9d", now=BEFORE_PAYMENTS_EXPIRY, **PAY)
    assert (d.allowed, d.status, d.reason) == (True, 200, "allowed")
    assert (d.required_trust, d.required_side_effect, d.risk_level) == ("low", "read", "low")
    assert (d.admin_trust, d.consented_trust, d.effective_trust) == ("high", "medium", "medium")
    assert (d.matched_grant, d.matched_grant_namespace) == ("payments-ops-agent", "mcp-servers")
    assert (d.matched_session, d.matched_session_namespace) == ("sess-8f1b9d", "mcp-servers")
    assert d.policy_version == "v1" and d.would_deny_reason == ""


def test_call_tool_alias_is_a_tool_call(payments: CompiledPolicy) -> None:
    d = ask(payments, "list_invoices", method="call_tool")
    assert (d.allowed, d.status, d.reason) == (False, 401, "missing_identity")


def test_session_consent_caps_trust(payments: CompiledPolicy) -> None:
    d = ask(payments, "refund_invoice", s="sess-8f1b9d", now=BEFORE_PAYMENTS_EXPIRY, **PAY)
    assert (d.allowed, d.status, d.reason) == (False, 403, "trust_too_low")
    trust = (d.required_trust, d.admin_trust, d.consented_trust, d.effective_trust)
    assert trust == ("high", "high", "medium", "medium")
    assert d.required_side_effect == "destructive" and d.risk_level == "high"
    assert d.matched_grant == "payments-ops-agent" and d.matched_session == "sess-8f1b9d"


def test_missing_session_when_required(payments: CompiledPolicy) -> None:
    d = ask(payments, "list_invoices", **PAY)
    assert (d.allowed, d.status, d.reason) == (False, 401, "missing_session")


def test_implicit_team_requirement_surfaces_as_session_not_found(payments: CompiledPolicy) -> None:
    # §11 #2: rendering filled the server team in; a caller without the team header does not match.
    d = ask(payments, "list_invoices", h="user-123", a="ops-agent", s="sess-8f1b9d", now=BEFORE_PAYMENTS_EXPIRY)
    assert (d.status, d.reason, d.matched_session) == (401, "session_not_found", "")


def test_session_expired_from_expiry_instant(payments: CompiledPolicy) -> None:
    d = ask(payments, "list_invoices", s="sess-8f1b9d", now=1774526400.0, **PAY)  # exactly expires_at
    assert (d.allowed, d.status, d.reason) == (False, 401, "session_expired")
    assert (d.matched_session, d.matched_session_namespace) == ("sess-8f1b9d", "mcp-servers")


def _required(**kw):
    return doc(required=True, grants=(grant("g", h="alice", effects=("read", "write"), trust="high"),), **kw)


def test_session_not_found_for_unknown_id() -> None:
    d = ask(_required(sessions=(session("s1", h="alice"),)), "read_doc", h="alice", s="nope")
    assert (d.allowed, d.status, d.reason, d.policy_version) == (False, 401, "session_not_found", "v1")


def test_session_revoked_reports_session_and_its_version() -> None:
    revoked = session("s1", h="alice", revoked=True, version="s-v3")
    d = ask(_required(sessions=(revoked,)), "read_doc", h="alice", s="s1")
    assert (d.allowed, d.status, d.reason) == (False, 401, "session_revoked")
    assert (d.matched_session, d.matched_session_namespace, d.policy_version) == ("s1", "ns", "s-v3")


@pytest.mark.parametrize(
    ("expires_at", "expired"),
    [
        ("2027-01-15T08:00:00Z", True),  # now == expiry ⇒ expired (§11 #7)
        ("2027-01-15T08:00:01Z", False),
        ("2027-01-15T09:00:00+01:00", True),
        ("2027-01-15T08:00:00.5Z", False),
        ("2027-01-15 08:00:00Z", True),  # unparseable ⇒ expired
        ("tomorrow", True),
        ("2027-02-30T00:00:00Z", True),
        ("", False),
    ],
)
def test_expiry_rule(expires_at: str, expired: bool) -> None:
    d = ask(_required(sessions=(session("s1", h="alice", expires_at=expires_at),)), "read_doc", h="alice", s="s1")
    assert d.reason == ("session_expired" if expired else "allowed")
    assert d.status == (401 if expired else 200)


def test_optional_dead_session_is_ignored() -> None:
    d0 = doc(grants=(grant("g", h="alice", trust="high", effects=("destructive",)),),
             sessions=(session("s1", h="alice", consented="low", revoked=True),))
    d = ask(d0, "wipe", h="alice", s="s1")
    # The revoked session's low consent does not apply: evaluation continues as if no session was sent.
    assert (d.allowed, d.reason, d.matched_session, d.consented_trust) == (True, "allowed", "", "high")


def test_optional_live_session_caps_consent_and_is_reported() -> None:
    d0 = doc(grants=(grant("g", h="alice", trust="high", effects=("destructive",)),),
             sessions=(session("s1", h="alice", consented="medium"),))
    d = ask(d0, "wipe", h="alice", s="s1")
    assert (d.allowed, d.status, d.reason, d.matched_session) == (False, 403, "trust_too_low", "s1")
    assert ask(d0, "wipe", h="alice").allowed


def test_missing_identity_is_401_even_with_session_id() -> None:
    d = ask(_required(), "read_doc", s="s1")
    assert (d.allowed, d.status, d.reason) == (False, 401, "missing_identity")


@pytest.mark.parametrize(("default", "allowed", "status"), [("deny", False, 403), ("ALLOW", True, 200)])
def test_no_matching_grant_follows_default_decision(default: str, allowed: bool, status: int) -> None:
    d = ask(doc(default=default, grants=(grant("g", h="alice"),)), "read_doc", h="bob")
    assert (d.allowed, d.status, d.reason, d.matched_grant, d.policy_version) == (
        allowed, status, "no_matching_grant", "", "v1")


def test_subject_matching_is_exact_and_case_sensitive() -> None:
    d0 = doc(grants=(grant("g", h="alice", t="team-a"),))
    assert ask(d0, "read_doc", h="alice", t="team-a", a="anything").allowed
    assert ask(d0, "read_doc", h="Alice", t="team-a").reason == "no_matching_grant"
    assert ask(d0, "read_doc", h="alice").reason == "no_matching_grant"  # team required by the grant
    assert ask(d0, "read_doc", t="team-a").reason == "no_matching_grant"


@pytest.mark.parametrize("default", ["deny", "allow"])
def test_disabled_grant_is_a_kill_switch_under_any_default(default: str) -> None:
    # §11 #3: upstream allowed here under default allow.
    d = ask(doc(default=default, grants=(grant("g", h="alice", disabled=True),)), "read_doc", h="alice")
    assert (d.allowed, d.status, d.reason, d.matched_grant) == (False, 403, "tool_not_granted", "")


def test_tool_not_granted_when_rules_do_not_name_the_tool_even_under_default_allow() -> None:
    g = grant("g", h="alice", rules=(ToolRule(name="write_doc", decision="allow"),), effects=("read", "write"))
    d = ask(doc(default="allow", grants=(g,), sessions=(session("s", h="alice"),)), "read_doc", h="alice", s="s")
    got = (d.allowed, d.status, d.reason, d.matched_session, d.matched_grant)
    assert got == (False, 403, "tool_not_granted", "s", "")


def test_tool_denied_vetoes_other_grants_and_is_attributed() -> None:
    allow_all = grant("a-allow", ns="a", h="alice", trust="high", effects=("read",))
    veto = grant("b-veto", ns="b", h="alice", rules=(ToolRule(name="read_doc", decision="DENY"),), version="g-v9")
    d = ask(doc(grants=(allow_all, veto)), "read_doc", h="alice")
    assert (d.allowed, d.status, d.reason) == (False, 403, "tool_denied")
    assert (d.matched_grant, d.matched_grant_namespace, d.policy_version) == ("b-veto", "b", "g-v9")


def test_first_deny_in_namespace_name_order_is_attributed() -> None:
    rules = (ToolRule(name="read_doc", decision="deny"),)
    d = ask(doc(grants=(grant("z", ns="b", h="alice", rules=rules), grant("y", ns="a", h="alice", rules=rules))),
            "read_doc", h="alice")
    assert (d.reason, d.matched_grant_namespace, d.matched_grant) == ("tool_denied", "a", "y")


def test_disabled_grants_deny_rules_do_not_apply() -> None:
    veto = grant("veto", h="alice", disabled=True, rules=(ToolRule(name="read_doc", decision="deny"),))
    d = ask(doc(grants=(veto, grant("ok", h="alice"))), "read_doc", h="alice")
    assert (d.allowed, d.matched_grant) == (True, "ok")


@pytest.mark.parametrize("default", ["deny", "allow"])
@pytest.mark.parametrize("tool", ["mystery", "not-in-inventory"])
def test_tool_side_effect_unknown_always_denies(default: str, tool: str) -> None:
    d = ask(doc(default=default, grants=(grant("g", h="alice", effects=("read", "write", "destructive")),)), tool,
            h="alice")
    assert (d.allowed, d.status, d.reason, d.matched_grant) == (False, 403, "tool_side_effect_unknown", "g")


@pytest.mark.parametrize("default", ["deny", "allow"])
def test_side_effect_not_allowed_always_denies(default: str) -> None:
    d = ask(doc(default=default, grants=(grant("g", h="alice", effects=("read", "destructive"), trust="high"),)),
            "write_doc", h="alice")
    assert (d.allowed, d.status, d.reason) == (False, 403, "side_effect_not_allowed")
    assert (d.required_side_effect, d.matched_grant, d.risk_level) == ("write", "g", "medium")


def test_empty_allowed_side_effects_is_fail_closed() -> None:
    d = ask(doc(grants=(grant("g", h="alice", effects=(), trust="high"),)), "read_doc", h="alice")
    assert d.reason == "side_effect_not_allowed"


def test_side_effects_are_not_ordered() -> None:
    d0 = doc(grants=(grant("g", h="alice", effects=("destructive",), trust="high"),))
    assert ask(d0, "wipe", h="alice").allowed
    assert ask(d0, "write_doc", h="alice").reason == "side_effect_not_allowed"
    assert ask(d0, "read_doc", h="alice").reason == "side_effect_not_allowed"


def test_trust_too_low_sets_all_trust_fields() -> None:
    d = ask(doc(grants=(grant("g", h="alice", effects=("write",), trust="low"),)), "write_doc", h="alice")
    assert (d.allowed, d.status, d.reason) == (False, 403, "trust_too_low")
    assert (d.required_trust, d.admin_trust, d.consented_trust, d.effective_trust) == ("medium", "low", "low", "low")


def test_trust_normalisation_garbage_is_low_and_case_insensitive() -> None:
    tools = (Tool(name="t", required_trust="HIGH", side_effect="Read"),)
    assert ask(doc(tools=tools, grants=(grant("g", h="a", trust=" High "),)), "t", h="a").allowed
    raw = dataclasses.replace(grant("g", h="a"), max_trust="root")  # compiled without validation
    d = ask(CompiledPolicy(doc(tools=tools, grants=(raw,))), "t", h="a")
    assert (d.reason, d.admin_trust) == ("trust_too_low", "low")


def test_risk_level_explicit_wins_else_derived() -> None:
    tools = (
        Tool(name="e", side_effect="read", required_trust="high", risk_level="LOW"),
        Tool(name="d1", side_effect="read", required_trust="high"),
        Tool(name="d2", side_effect="write"),
        Tool(name="d3", side_effect="read", required_trust="medium"),
        Tool(name="d4", side_effect="read"),
        Tool(name="d5"),
    )
    d0 = doc(tools=tools)
    got = {t.name: ask(d0, t.name, h="x").risk_level for t in tools}
    assert got == {"e": "low", "d1": "high", "d2": "medium", "d3": "medium", "d4": "low", "d5": ""}


def test_every_evaluator_reason_is_covered_here() -> None:
    # Guard: if a reason is added to reasons.py it needs a test in this module.
    source = Path(__file__).read_text()
    missing = {r for r in EVALUATOR_REASONS - {GRANT_WITHOUT_TRUST} if f'"{r}"' not in source}
    assert not missing


def test_isolation_matrix_401_vs_403() -> None:
    server_a = doc(required=True, grants=(grant("ga", h="alice"),), sessions=(session("sa", h="alice"),))
    server_b_required = doc(required=True, grants=(grant("gb", h="bob"),))
    server_b_optional = doc(grants=(grant("gb", h="bob"),))
    assert ask(server_a, "read_doc", h="alice", s="sa").allowed
    assert ask(server_b_required, "read_doc", h="alice", s="sa").status == 401
    assert ask(server_b_required, "read_doc", h="alice", s="sa").reason == "session_not_found"
    assert (ask(server_b_optional, "read_doc", h="alice", s="sa").status,
            ask(server_b_optional, "read_doc", h="alice", s="sa").reason) == (403, "no_matching_grant")
    assert ask(server_a, "write_doc", h="alice", s="sa").status == 403


def test_tool_visible_matches_authorize() -> None:
    policy = CompiledPolicy(doc(grants=(grant("g", h="alice", effects=("read", "write"), trust="medium"),)))
    alice = Identity(human_id="alice")
    names = [t.name for t in policy.doc.tools] + ["unknown"]
    assert policy.visible_tools(alice, names, NOW) == ["read_doc", "write_doc"]
    assert policy.visible_tools(Identity(human_id="bob"), names, NOW) == []
    for name in names:
        assert policy.tool_visible(alice, name, NOW) == ask(policy, name, h="alice").allowed


# -- prompts and resources: governed like tools (issue 13 item 7) --------------------------------

_PROMPTS = (Prompt(name="summary", side_effect="read"),
            Prompt(name="secret", required_trust="high", side_effect="read"),
            Prompt(name="undeclared_effect"))
_RESOURCES = (Resource(name="readme", uri="file:///readme.md", side_effect="read"),
              Resource(name="ledger", uri="db://ledger/{account}", required_trust="medium", side_effect="read"),
              Resource(name="blob", uri="s3://{+key}", side_effect="write"))


def _inventory_doc(*grants: Grant) -> CompiledPolicy:
    return CompiledPolicy(doc(grants=grants, prompts=_PROMPTS, resources=_RESOURCES))


def test_prompt_get_is_decided_like_a_tool_call() -> None:
    rules = (ToolRule(name="secret", decision="deny"), ToolRule(name="summary"), ToolRule(name="undeclared_effect"))
    p = _inventory_doc(grant("g", h="ann", trust="medium", prompt_rules=rules))
    assert ask(p, "summary", method="prompts/get").reason == "missing_identity"
    assert ask(p, "summary", method="prompts/get", h="ann").allowed
    assert ask(p, "summary", method="prompts/get", h="bob").reason == "no_matching_grant"
    d = ask(p, "secret", method="prompts/get", h="ann")
    assert (d.allowed, d.status, d.reason, d.matched_grant) == (False, 403, "prompt_denied", "g")
    assert ask(p, "undeclared_effect", method="prompts/get", h="ann").reason == "prompt_side_effect_unknown"
    assert ask(p, "nope", method="prompts/get", h="ann").reason == "prompt_not_granted"
    # A grant without prompt rules covers every prompt; an undeclared one still has no side effect.
    assert ask(_inventory_doc(grant("g", h="ann")), "nope", method="prompts/get", h="ann").reason == (
        "prompt_side_effect_unknown"
    )


def test_prompt_rules_narrow_and_trust_applies() -> None:
    p = _inventory_doc(grant("g", h="ann", trust="medium", prompt_rules=(ToolRule(name="summary", decision="allow"),)))
    assert ask(p, "summary", method="prompts/get", h="ann").allowed
    assert ask(p, "secret", method="prompts/get", h="ann").reason == "prompt_not_granted"
    high = _inventory_doc(grant("g", h="ann", trust="medium"))
    assert ask(high, "secret", method="prompts/get", h="ann").reason == "trust_too_low"
    # Tool rules do not narrow prompts, and prompt rules do not narrow tools.
    assert ask(p, "read_doc", h="ann").allowed


def test_resource_read_is_decided_by_uri() -> None:
    # A deny rule in any matching grant wins over another grant covering every resource (as for tools).
    p = _inventory_doc(grant("g", h="ann", trust="medium", effects=("read",)),
                       grant("h", h="ann", resource_rules=(ToolRule(name="readme", decision="deny"),)))
    assert ask(p, "file:///readme.md", method="resources/read", h="ann").reason == "resource_denied"
    assert ask(p, "db://ledger/acme", method="resources/read", h="ann").allowed
    # A simple template variable does not cross a path segment: undeclared, so refused.
    assert not ask(p, "db://ledger/acme/../../etc", method="resources/read", h="ann").allowed
    assert ask(p, "file:///etc/passwd", method="resources/read", h="ann").reason == "resource_side_effect_unknown"
    assert ask(p, "s3://a/b/c", method="resources/read", h="ann").reason == "side_effect_not_allowed"
    narrow = _inventory_doc(grant("g", h="ann", resource_rules=(ToolRule(name="blob", decision="allow"),)))
    assert ask(narrow, "file:///readme.md", method="resources/read", h="ann").reason == "resource_not_granted"


def test_list_items_are_visible_iff_usable() -> None:
    p = _inventory_doc(grant("g", h="ann", trust="low"))
    ann = Identity("ann")
    assert p.item_visible(ann, "prompts", {"name": "summary"}, NOW)
    assert not p.item_visible(ann, "prompts", {"name": "secret"}, NOW)
    assert p.item_visible(ann, "resources", {"uri": "file:///readme.md", "name": "anything"}, NOW)
    assert not p.item_visible(ann, "resources", {"uri": "file:///other", "name": "readme"}, NOW)
    assert not p.item_visible(ann, "resourceTemplates", {"name": "ledger", "uriTemplate": "db://ledger/{a}"}, NOW)
    assert p.item_visible(ann, "tools", {"name": "read_doc"}, NOW)
    assert not p.item_visible(ann, "tools", {"name": 7}, NOW)
    assert not p.item_visible(ann, "unknown", {"name": "read_doc"}, NOW)
    assert not p.item_visible(Identity(), "prompts", {"name": "summary"}, NOW)


def test_observe_mode_allows_prompts_and_bare_lists_but_reports() -> None:
    p = CompiledPolicy(doc(mode="observe", prompts=_PROMPTS))
    d = ask(p, "summary", method="prompts/get")
    assert (d.allowed, d.would_deny_reason) == (True, "missing_identity")
    d = ask(p, "", method="tools/list")
    assert (d.allowed, d.would_deny_reason) == (True, "missing_identity")
