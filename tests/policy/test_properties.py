"""Property tests: monotonicity, visibility ⊆ callability, revision stability."""

from __future__ import annotations

import dataclasses
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sentinel.policy import (
    AuthzRequest,
    CompiledPolicy,
    Grant,
    Identity,
    PolicyDocument,
    SessionBinding,
    Tool,
    ToolRule,
    compute_revision,
    parse_document,
    to_pretty_json,
)
from mcp_sentinel.policy.normalize import fold, trust_rank
from tests.helpers.policy_builders import NOW, doc

NAMES = st.sampled_from(["", "alice", "bob"])
TRUST = st.sampled_from(["", "low", "medium", "high", "HIGH"])
EFFECTS = st.lists(st.sampled_from(["read", "write", "destructive"]), unique=True, max_size=3).map(tuple)
TOOL_NAMES = ["read_doc", "write_doc", "wipe", "mystery", "ghost"]
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)

rules = st.lists(
    st.builds(ToolRule, name=st.sampled_from(TOOL_NAMES), decision=st.sampled_from(["", "allow", "deny"]),
              required_trust=TRUST),
    max_size=3, unique_by=lambda r: r.name,
).map(tuple)
grants = st.lists(
    st.builds(Grant, name=st.sampled_from(["g1", "g2", "g3"]), namespace=st.sampled_from(["a", "b"]),
              human_id=NAMES, agent_id=st.sampled_from(["", "bot"]), team_id=st.sampled_from(["", "t1"]),
              max_trust=TRUST, allowed_side_effects=EFFECTS, disabled=st.booleans(), tool_rules=rules,
              policy_version=st.sampled_from(["", "gv"])),
    max_size=5, unique_by=lambda g: (g.namespace, g.name),
).map(tuple)
sessions = st.lists(
    st.builds(SessionBinding, name=st.sampled_from(["s1", "s2"]), namespace=st.sampled_from(["a", "b"]),
              human_id=NAMES, agent_id=st.sampled_from(["", "bot"]), team_id=st.sampled_from(["", "t1"]),
              consented_trust=TRUST, revoked=st.booleans(),
              expires_at=st.sampled_from(["", "2027-01-15T08:00:00Z", "2030-01-01T00:00:00Z", "junk"])),
    max_size=3, unique_by=lambda s: (s.namespace, s.name),
).map(tuple)
identities = st.builds(Identity, human_id=NAMES, agent_id=st.sampled_from(["", "bot"]),
                       team_id=st.sampled_from(["", "t1"]), session_id=st.sampled_from(["", "s1", "s2", "s9"]))
documents = st.builds(
    lambda g, s, required, mode: doc(grants=g, sessions=s, required=required, mode=mode),
    grants, sessions, st.booleans(), st.sampled_from(["allow-list", "observe"]),
)


def _permissive(g: Grant) -> bool:
    return all(fold(r.decision) != "deny" and trust_rank(r.required_trust) == 1 for r in g.tool_rules)


@settings(max_examples=300, deadline=None)
@given(documents, identities, st.sampled_from(TOOL_NAMES), st.data())
def test_removing_a_permissive_grant_never_turns_deny_into_allow(d: PolicyDocument, who: Identity, tool: str,
                                                                  data: st.DataObject) -> None:
    d = dataclasses.replace(d, policy=dataclasses.replace(d.policy, mode="allow-list", default_decision="deny"))
    if not d.grants:
        return
    i = data.draw(st.integers(0, len(d.grants) - 1))
    # Removing a restriction (a deny rule, or a rule raising required trust) may rightly allow more.
    if not _permissive(d.grants[i]):
        return
    req = AuthzRequest(who, "tools/call", tool)
    before = CompiledPolicy(d).authorize(req, NOW)
    after = CompiledPolicy(dataclasses.replace(d, grants=d.grants[:i] + d.grants[i + 1:])).authorize(req, NOW)
    if not before.allowed:
        assert not after.allowed, (before.reason, after.reason)


@settings(max_examples=300, deadline=None)
@given(documents, identities)
def test_visible_tools_are_callable(d: PolicyDocument, who: Identity) -> None:
    policy = CompiledPolicy(d)
    for tool in TOOL_NAMES:
        visible = policy.tool_visible(who, tool, NOW)
        for method in ("tools/call", "call_tool"):
            assert policy.authorize(AuthzRequest(who, method, tool), NOW).allowed == visible


def _scramble(value: object, rnd: random.Random) -> object:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        out = {}
        for k, v in items:
            key = "".join(c.upper() if rnd.random() < 0.3 else c for c in k)
            # Label maps are data, not struct fields: their keys are neither folded nor filtered.
            out[key] = v if k == "labels" else _scramble(v, rnd)
        out["x_unknown_" + str(rnd.randint(0, 9))] = {"nested": [1, 2]}
        return out
    if isinstance(value, list):
        return [_scramble(v, rnd) for v in value]
    return value


@settings(max_examples=200, deadline=None)
@given(documents, st.lists(st.builds(Tool, name=TEXT, description=TEXT, labels=st.dictionaries(TEXT, TEXT, max_size=3)),
                           max_size=3, unique_by=lambda t: t.name),
       st.randoms(use_true_random=False))
def test_revision_stable_under_reordering_case_and_unknown_keys(d: PolicyDocument, tools: list[Tool],
                                                                rnd: random.Random) -> None:
    d = dataclasses.replace(d, tools=tuple(tools))
    d = dataclasses.replace(d, revision=compute_revision(d))
    text = json.dumps(_scramble(json.loads(to_pretty_json(d)), rnd), ensure_ascii=rnd.random() < 0.5)
    again = parse_document(text)
    # Labels are maps (no case folding of their keys); everything else must round-trip exactly.
    assert compute_revision(again) == d.revision
    assert again.revision == d.revision
