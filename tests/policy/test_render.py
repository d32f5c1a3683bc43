"""Rendering Kubernetes objects into policy.json (upstream §2.2, §2.4, §2.6)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_sentinel.policy import (
    AuthzRequest,
    Identity,
    PolicyError,
    compute_revision,
    load_policy,
    parse_document,
    render_document,
    render_policy,
    to_pretty_json,
)
from tests.helpers.render_examples import GRANT, SERVER, TEAM

PAYMENTS = Path(__file__).with_name("payments_example.json")
NOW = datetime(2026, 5, 4, 18, 0, tzinfo=UTC)

SESSION = {
    "metadata": {"name": "sess-8f1b9d", "namespace": "mcp-servers"},
    "spec": {
        "serverRef": {"name": "payments", "namespace": "mcp-servers"},
        "subject": {"humanID": "user-123", "agentID": "ops-agent"},
        "consentedTrust": "medium",
        "expiresAt": "2026-03-26T14:00:00.750+02:00",
        "upstreamTokenSecretRef": {"name": "payments-upstream-token", "key": "access-token"},
    },
}



def _obj(kind: dict, name: str, ns: str, ref: dict) -> dict:
    out = copy.deepcopy(kind)
    out["metadata"] = {"name": name, "namespace": ns}
    out["spec"]["serverRef"] = ref
    return out


def test_default_auth_mode_is_platform_and_resource_is_rendered() -> None:
    """A server that names no auth mode gets platform tokens, never header identity (issue 13 item 3)."""
    spec = {k: v for k, v in SERVER["spec"].items() if k != "auth"}
    doc = render_document({**SERVER, "spec": spec}, [], [])
    assert doc.auth is not None and doc.auth.mode == "platform" and doc.auth.resource == ""
    url = "https://sentinel.example.com/payments/mcp"
    doc = render_document({**SERVER, "spec": {**spec, "auth": {"resource": url}}}, [], [])
    assert doc.auth is not None and doc.auth.resource == url
    for bad in ("payments/mcp", "ftp://x/mcp", "https://x/mcp?aud=1", "https://x/mcp#f"):
        with pytest.raises(PolicyError, match="auth.resource"):
            render_policy({**SERVER, "spec": {**spec, "auth": {"resource": bad}}}, [], [], now=NOW)


def test_payments_render_reproduces_the_documented_example() -> None:
    text = render_policy(SERVER, [GRANT], [SESSION], cluster="local", now=NOW)
    assert json.loads(text) == json.loads(PAYMENTS.read_text())
    assert text == to_pretty_json(parse_document(PAYMENTS.read_text()))
    d = parse_document(text)
    assert d.revision == "sha256:879763c5561c4841cb367cfb15be5d4bef2d4789d03ba8132dbd12c1c92cfe8e"
    assert d.generated_at == "2026-05-04T18:00:00Z"
    load_policy(text)


def test_filtering_by_server_ref_name_and_effective_namespace() -> None:
    grants = [
        _obj(GRANT, "same-ns-implicit", "mcp-servers", {"name": "payments"}),
        _obj(GRANT, "other-ns-explicit", "team-a", {"name": "payments", "namespace": "mcp-servers"}),
        _obj(GRANT, "other-ns-implicit", "team-a", {"name": "payments"}),
        _obj(GRANT, "other-server", "mcp-servers", {"name": "billing"}),
        _obj(GRANT, "wrong-explicit-ns", "mcp-servers", {"name": "payments", "namespace": "elsewhere"}),
    ]
    # Another namespace's grant pointing here is ignored (issue 14) ...
    d = render_document(SERVER, grants, [])
    assert [(g.namespace, g.name) for g in d.grants] == [("mcp-servers", "same-ns-implicit")]
    # ... unless the server's own namespace admits it (an annotation on the MCPServer).
    admitting = copy.deepcopy(SERVER)
    admitting["metadata"]["annotations"] = {"mcp-sentinel.io/admit-grants-from": " team-a , team-c"}
    d = render_document(admitting, grants, [])
    assert [(g.namespace, g.name) for g in d.grants] == [("mcp-servers", "same-ns-implicit"),
                                                         ("team-a", "other-ns-explicit")]


def test_team_defaulting_and_explicit_foreign_team_kept() -> None:
    foreign = copy.deepcopy(GRANT)
    foreign["spec"]["subject"]["teamID"] = "other-team"
    d = render_document(SERVER, [GRANT, _obj(foreign, "delegated", "mcp-servers", {"name": "payments"})], [SESSION])
    assert [g.team_id for g in d.grants] == [TEAM, "other-team"]
    assert d.sessions[0].team_id == TEAM
    no_team = copy.deepcopy(SERVER)
    del no_team["spec"]["teamID"]
    d = render_document(no_team, [GRANT], [])
    assert d.grants[0].team_id == "" and d.server.team_id == ""


def test_defaults_for_trust_rules_and_blocks() -> None:
    bare_grant = {"metadata": {"name": "g", "namespace": "mcp-servers"},
                  "spec": {"serverRef": {"name": "payments"}, "subject": {"humanID": "h"},
                           "toolRules": [{"name": "list_invoices"}]}}
    bare_session = {"metadata": {"name": "s", "namespace": "mcp-servers"},
                    "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "a"}, "revoked": True}}
    d = render_document(SERVER, [bare_grant], [bare_session])
    g, s = d.grants[0], d.sessions[0]
    assert (g.max_trust, g.allowed_side_effects, g.disabled, g.policy_version) == ("low", (), False, "")
    assert (g.tool_rules[0].decision, g.tool_rules[0].required_trust) == ("allow", "low")
    assert (s.consented_trust, s.revoked, s.expires_at, s.upstream_token_ref) == ("low", True, "", "")
    assert d.tools[0].required_trust == "low"
    assert d.auth is not None and d.auth.mode == "header" and d.auth.token_header == "Authorization"
    assert d.policy is not None and (d.policy.mode, d.policy.default_decision, d.policy.policy_version) == (
        "allow-list", "deny", "v1")


def test_blocks_absent_without_gateway_unless_configured() -> None:
    server = {"metadata": {"name": "x", "namespace": "n"}, "spec": {"policy": {"mode": "observe"}}}
    d = render_document(server, [], [])
    assert d.auth is None and d.session is None
    assert d.policy is not None and d.policy.mode == "observe"


def test_expires_at_rendered_in_utc_seconds() -> None:
    d = render_document(SERVER, [], [SESSION])
    assert d.sessions[0].expires_at == "2026-03-26T12:00:00Z"


def test_churn_avoidance_keeps_existing_text_byte_for_byte() -> None:
    first = render_policy(SERVER, [GRANT], [SESSION], existing_text=None, now=NOW)
    odd_but_valid = first.replace("\n", "\r\n")  # same content, different bytes
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert render_policy(SERVER, [GRANT], [SESSION], existing_text=odd_but_valid, now=later) == odd_but_valid
    assert render_policy(SERVER, [GRANT], [SESSION], existing_text=odd_but_valid.encode(), now=later) == odd_but_valid


def test_changed_content_is_rewritten_with_new_generated_at() -> None:
    first = render_policy(SERVER, [GRANT], [SESSION], now=NOW)
    revoked = copy.deepcopy(SESSION)
    revoked["spec"]["revoked"] = True
    second = render_policy(SERVER, [GRANT], [revoked], existing_text=first, now=1893456000.0)
    assert second != first
    d = parse_document(second)
    assert d.generated_at == "2030-01-01T00:00:00Z" and d.sessions[0].revoked
    assert compute_revision(d) == d.revision


@pytest.mark.parametrize("existing", ["", "not json", "[]"])
def test_undecodable_existing_text_is_rewritten(existing: str) -> None:
    assert parse_document(render_policy(SERVER, [GRANT], [SESSION], existing_text=existing, now=NOW)).revision


def test_tampered_existing_text_is_rewritten() -> None:
    first = render_policy(SERVER, [GRANT], [SESSION], now=NOW)
    tampered = first.replace('"max_trust": "high"', '"max_trust": "low"').replace(
        '"generated_at": "2026-05-04T18:00:00Z"', '"generated_at": "1999-01-01T00:00:00Z"')
    # Same claimed revision, but content no longer hashes to it: rewrite.
    out = render_policy(SERVER, [GRANT], [SESSION], existing_text=tampered, now=NOW)
    assert out != tampered and '"max_trust": "high"' in out


def test_invalid_render_raises_and_names_the_problem() -> None:
    bad = copy.deepcopy(GRANT)
    bad["spec"]["allowedSideEffects"] = ["read", "exec"]
    with pytest.raises(PolicyError, match=r'allowed_side_effects\[1\] "exec"'):
        render_policy(SERVER, [bad], [], now=NOW)
    with pytest.raises(PolicyError, match="maxTrust: expected a string"):
        render_policy(SERVER, [{"metadata": {"name": "g", "namespace": "mcp-servers"},
                                "spec": {"serverRef": {"name": "payments"}, "maxTrust": 3}}], [], now=NOW)


def test_same_named_grants_from_two_namespaces_render() -> None:
    # §11 #6: upstream got stuck on the last good policy here.
    a = _obj(GRANT, "ops", "team-a", {"name": "payments", "namespace": "mcp-servers"})
    b = _obj(GRANT, "ops", "team-b", {"name": "payments", "namespace": "mcp-servers"})
    load_policy(render_policy(SERVER, [a, b], [], now=NOW))


def test_cross_namespace_grants_and_sessions_are_ignored_unless_admitted() -> None:
    """A tenant in team-b cannot grant itself access to team-a's server by pointing serverRef at it."""
    ref = {"name": "payments", "namespace": "mcp-servers"}
    intruder_grant = _obj(GRANT, "let-me-in", "team-b", ref)
    intruder_session = _obj(SESSION, "my-session", "team-b", ref)
    text = render_policy(SERVER, [GRANT, intruder_grant], [SESSION, intruder_session], now=NOW)
    assert text == render_policy(SERVER, [GRANT], [SESSION], now=NOW)
    for notes in ({}, {"mcp-sentinel.io/admit-grants-from": "team-c"},
                        {"mcp-sentinel.io/admit-grants-from": "team-b-other,team"}, {"other": "team-b"}):
        server = copy.deepcopy(SERVER)
        server["metadata"]["annotations"] = notes
        d = render_document(server, [intruder_grant], [intruder_session])
        assert d.grants == () and d.sessions == (), notes
    server = copy.deepcopy(SERVER)
    server["metadata"]["annotations"] = {"mcp-sentinel.io/admit-grants-from": "team-b"}
    d = render_document(server, [intruder_grant], [intruder_session])
    assert [g.name for g in d.grants] == ["let-me-in"] and [s.name for s in d.sessions] == ["my-session"]


def test_namespace_team_wins_over_a_forged_spec_team_id() -> None:
    """`spec.teamID` is free-form: the platform's namespace → team mapping decides the server's team."""
    forged = copy.deepcopy(SERVER)
    forged["spec"]["teamID"] = "someone-elses-team"
    d = render_document(forged, [GRANT], [SESSION], namespace_team=TEAM)
    assert d.server.team_id == TEAM
    assert [g.team_id for g in d.grants] == [TEAM] and d.sessions[0].team_id == TEAM
    assert render_policy(forged, [GRANT], [SESSION], now=NOW, namespace_team=TEAM) == \
        render_policy(SERVER, [GRANT], [SESSION], now=NOW, namespace_team=TEAM)
    assert render_document(forged, [], [], namespace_team="").server.team_id == ""


_NS = st.sampled_from(["mcp-servers", "team-a", "team-b", "team-a-x", "", "mcp-servers-2"])


@settings(max_examples=200, deadline=None)
@given(grant_ns=st.lists(st.tuples(_NS, st.booleans()), max_size=8), admit=st.lists(_NS, max_size=3))
def test_rendered_grants_come_only_from_admitted_namespaces(grant_ns: list[tuple[str, bool]], admit: list[str]) -> None:
    server = copy.deepcopy(SERVER)
    if admit:
        server["metadata"]["annotations"] = {"mcp-sentinel.io/admit-grants-from": ",".join(admit)}
    grants = [_obj(GRANT, f"g{i}", ns, {"name": "payments", **({"namespace": "mcp-servers"} if explicit else {})})
              for i, (ns, explicit) in enumerate(grant_ns)]
    d = render_document(server, grants, [])
    allowed = {"mcp-servers", *(a for a in admit if a)}
    assert {g.namespace for g in d.grants} <= allowed
    expected = [f"g{i}" for i, (ns, explicit) in enumerate(grant_ns)
                if ns in allowed and (explicit or ns == "mcp-servers")]
    assert [g.name for g in d.grants] == expected

def test_prompts_resources_and_their_grant_rules_render_and_decide() -> None:
    server: dict[str, Any] = copy.deepcopy(SERVER)
    server["spec"]["session"] = {"required": False}
    server["spec"]["prompts"] = [{"name": "triage", "description": "Triage a dispute."},
                                 {"name": "escalate", "requiredTrust": "high"}]
    server["spec"]["mcpResources"] = [{"name": "ledger", "uri": "ledger://{account}/entries", "riskLevel": "low"}]
    grant: dict[str, Any] = copy.deepcopy(GRANT)
    grant["spec"]["promptRules"] = [{"name": "triage"}, {"name": "escalate", "decision": "deny"}]
    grant["spec"]["resourceRules"] = [{"name": "ledger", "decision": "allow", "requiredTrust": "medium"}]
    text = render_policy(server, [grant], [], cluster="local", now=NOW)
    d = parse_document(text)
    assert [(p.name, p.required_trust, p.side_effect) for p in d.prompts] == [
        ("triage", "low", "read"), ("escalate", "high", "read")]
    assert [(r.name, r.uri, r.side_effect) for r in d.resources] == [("ledger", "ledger://{account}/entries", "read")]
    assert [(r.name, r.decision) for r in d.grants[0].prompt_rules] == [("triage", "allow"), ("escalate", "deny")]
    assert d.grants[0].resource_rules[0].required_trust == "medium"
    policy, now = load_policy(text), NOW.timestamp()
    who = Identity("user-123", "ops-agent", TEAM)
    assert policy.authorize(AuthzRequest(who, "prompts/get", "triage"), now).allowed
    assert policy.authorize(AuthzRequest(who, "prompts/get", "escalate"), now).reason == "prompt_denied"
    assert policy.authorize(AuthzRequest(who, "resources/read", "ledger://acme/entries"), now).allowed
    assert not policy.authorize(AuthzRequest(who, "resources/read", "ledger://acme/other"), now).allowed
    # Documents without prompts or resources keep their revision (the new keys are omitted when empty).
    assert "prompts" not in render_policy(SERVER, [GRANT], [SESSION], cluster="local", now=NOW)
