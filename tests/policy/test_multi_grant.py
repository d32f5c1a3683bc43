"""Union-of-grants semantics and attribution (upstream §3.6, §11 #10 kept deliberately)."""

from __future__ import annotations

from mcp_sentinel.policy import ToolRule
from tests.helpers.policy_builders import ask, doc, grant


def _ask(*grants, tool="read_doc", **kw):
    return ask(doc(grants=grants, **kw), tool, h="alice")


def test_coverage_by_any_enabled_grant() -> None:
    other = grant("a", ns="a", h="alice", rules=(ToolRule(name="write_doc"),))
    blanket = grant("b", ns="b", h="alice")
    d = _ask(other, blanket)
    assert (d.allowed, d.matched_grant) == (True, "b")


def test_side_effect_permission_from_any_covering_grant_and_attribution_moves_to_it() -> None:
    reads = grant("a", ns="a", h="alice", effects=("read",), trust="high")
    writes = grant("b", ns="b", h="alice", effects=("write",), trust="medium")
    d = _ask(reads, writes, tool="write_doc")
    assert (d.allowed, d.matched_grant, d.admin_trust) == (True, "b", "medium")


def test_first_covering_grant_attributed_when_none_allows_the_side_effect() -> None:
    d = _ask(grant("b", ns="b", h="alice", effects=("read",)), grant("a", ns="a", h="alice", effects=("read",)),
             tool="wipe")
    assert (d.reason, d.matched_grant, d.matched_grant_namespace) == ("side_effect_not_allowed", "a", "a")


def test_admin_trust_is_max_over_side_effect_allowing_grants() -> None:
    low = grant("a", ns="a", h="alice", trust="low", effects=("write",))
    high = grant("b", ns="b", h="alice", trust="medium", effects=("write",))
    d = _ask(low, high, tool="write_doc")
    assert (d.allowed, d.admin_trust, d.matched_grant) == (True, "medium", "b")


def test_higher_trust_of_a_grant_not_allowing_the_side_effect_does_not_count() -> None:
    strong_wrong_effect = grant("a", ns="a", h="alice", trust="high", effects=("read",))
    weak_right_effect = grant("b", ns="b", h="alice", trust="low", effects=("write",))
    d = _ask(strong_wrong_effect, weak_right_effect, tool="write_doc")
    assert (d.reason, d.admin_trust, d.matched_grant) == ("trust_too_low", "low", "b")


def test_equal_trust_keeps_the_first_side_effect_allowing_grant() -> None:
    d = _ask(grant("b", ns="x", h="alice", trust="medium"), grant("a", ns="x", h="alice", trust="medium"))
    assert (d.allowed, d.matched_grant) == (True, "a")  # (namespace, name) order, not document order


def test_rule_requirement_of_one_grant_raises_requirement_for_all() -> None:
    # §11 #10 kept: a's rule raises the requirement; b's higher trust then satisfies it.
    a = grant("a", ns="a", h="alice", trust="low", rules=(ToolRule(name="read_doc", required_trust="high"),))
    b_med = grant("b", ns="b", h="alice", trust="medium")
    d = _ask(a, b_med)
    assert (d.reason, d.required_trust, d.admin_trust, d.matched_grant) == ("trust_too_low", "high", "medium", "b")
    b_high = grant("b", ns="b", h="alice", trust="high")
    d = _ask(a, b_high)
    assert (d.allowed, d.required_trust, d.admin_trust, d.matched_grant) == (True, "high", "high", "b")


def test_grant_raising_requirement_is_attributed() -> None:
    a = grant("a", ns="a", h="alice", trust="high")
    b = grant("b", ns="b", h="alice", trust="high", rules=(ToolRule(name="read_doc", required_trust="medium"),))
    d = _ask(a, b)
    assert (d.allowed, d.required_trust, d.matched_grant) == (True, "medium", "b")


def test_rules_of_grants_not_allowing_the_side_effect_never_raise_requirement() -> None:
    a = grant("a", ns="a", h="alice", effects=("write",), rules=(ToolRule(name="read_doc", required_trust="high"),))
    b = grant("b", ns="b", h="alice", trust="low")
    d = _ask(a, b)
    assert (d.allowed, d.required_trust, d.matched_grant) == (True, "low", "b")


def test_policy_version_follows_attributed_grant_else_document() -> None:
    assert _ask(grant("a", h="alice", version="g-v7")).policy_version == "g-v7"
    assert _ask(grant("a", h="alice")).policy_version == "v1"
    assert _ask(grant("a", h="alice"), version="").policy_version == ""


def test_deny_rule_checked_before_that_grants_side_effects() -> None:
    veto = grant("a", h="alice", effects=("read",), trust="high", rules=(ToolRule(name="read_doc", decision="deny"),))
    assert _ask(veto).reason == "tool_denied"


def test_rule_decision_defaults_to_allow_and_grants_with_rules_cover_only_named_tools() -> None:
    g = grant("a", h="alice", effects=("read", "write"), trust="high", rules=(ToolRule(name="read_doc"),))
    assert _ask(g).allowed
    assert _ask(g, tool="write_doc").reason == "tool_not_granted"
