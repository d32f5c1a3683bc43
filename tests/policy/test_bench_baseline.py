"""Differential check: the indexed evaluator agrees with the bench's linear-scan baseline."""

from __future__ import annotations

from bench.policy_decision import NOW, LinearEvaluator, requests, synthetic_document
from mcp_sentinel.policy import CompiledPolicy


def test_compiled_and_linear_evaluators_agree_on_mixed_traffic() -> None:
    doc = synthetic_document(n_grants=600, n_sessions=60, seed=3)
    compiled, linear = CompiledPolicy(doc), LinearEvaluator(doc)
    reqs = requests(doc, 3000, seed=5)
    decisions = [compiled.authorize(r, NOW) for r in reqs]
    assert decisions == [linear.authorize(r, NOW) for r in reqs]
    reasons = {d.reason for d in decisions}
    # The traffic must exercise both outcomes and several deny paths for the comparison to mean anything.
    assert {"allowed", "no_matching_grant", "side_effect_not_allowed", "trust_too_low"} <= reasons
