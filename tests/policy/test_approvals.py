"""Grant `approval` (issue 18 item 3): rendered, validated, covered by the revision, looked up per call."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mcp_sentinel.policy import AuthzRequest, Identity, PolicyError, compute_revision, load_policy, render_policy
from mcp_sentinel.policy.approvals import DEFAULT_TTL_SECONDS, ApprovalIndex, approval_digest
from mcp_sentinel.policy.document import ApprovalRule
from mcp_sentinel.policy.validate import validate

NOW = datetime(2026, 5, 4, 18, 0, tzinfo=UTC)
TEAM = "7d0a0b8f-7c25-4761-a632-3cf0108e31d6"
SERVER = {
    "metadata": {"name": "payments", "namespace": "mcp-servers"},
    "spec": {
        "teamID": TEAM,
        "gateway": {"enabled": True},
        "auth": {"mode": "header"},
        "session": {"required": True},
        "tools": [
            {"name": "list_invoices", "sideEffect": "read"},
            {"name": "refund_invoice", "requiredTrust": "high", "sideEffect": "destructive"},
        ],
    },
}
GRANT: dict[str, Any] = {
    "metadata": {"name": "payments-ops-agent", "namespace": "mcp-servers"},
    "spec": {
        "serverRef": {"name": "payments"},
        "subject": {"humanID": "user-123", "agentID": "ops-agent"},
        "maxTrust": "high",
        "allowedSideEffects": ["read", "destructive"],
        "toolRules": [{"name": "list_invoices", "decision": "allow"},
                      {"name": "refund_invoice", "decision": "allow", "requiredTrust": "high"}],
    },
}
SESSION = {
    "metadata": {"name": "sess-8f1b9d", "namespace": "mcp-servers"},
    "spec": {
        "serverRef": {"name": "payments", "namespace": "mcp-servers"},
        "subject": {"humanID": "user-123", "agentID": "ops-agent"},
        "consentedTrust": "medium",
    },
}


def _grant(approval: Any) -> dict[str, Any]:
    g = copy.deepcopy(GRANT)
    g["spec"]["approval"] = approval
    return g


def test_approval_renders_with_default_ttl_and_changes_the_revision() -> None:
    plain = render_policy(SERVER, [GRANT], [SESSION], now=NOW)
    text = render_policy(SERVER, [_grant({"sideEffects": ["destructive"]})], [SESSION], now=NOW)
    raw = json.loads(text)
    assert raw["grants"][0]["approval"] == {"sideEffects": ["destructive"], "ttlSeconds": DEFAULT_TTL_SECONDS}
    assert "approval" not in json.loads(plain)["grants"][0]
    assert raw["revision"] != json.loads(plain)["revision"]
    policy = load_policy(text)
    assert policy.doc.grants[0].approval == ApprovalRule(("destructive",), (), DEFAULT_TTL_SECONDS)


def test_tampered_approval_fails_the_revision_check() -> None:
    text = render_policy(SERVER, [_grant({"tools": ["refund_invoice"], "ttlSeconds": 120})], [SESSION], now=NOW)
    raw = json.loads(text)
    del raw["grants"][0]["approval"]  # someone strips the approval from the delivered document
    with pytest.raises(PolicyError, match="revision mismatch"):
        load_policy(json.dumps(raw))


@pytest.mark.parametrize(
    ("approval", "message"),
    [
        ({}, "must name at least one"),
        ({"sideEffects": ["delete"]}, r"sideEffects\[0\]"),
        ({"tools": [" "]}, r"tools\[0\] is empty"),
        ({"tools": ["x"], "ttlSeconds": 59}, "ttlSeconds"),
        ({"tools": ["x"], "ttlSeconds": 86401}, "ttlSeconds"),
        ({"tools": ["x"], "ttlSeconds": "900"}, "integer"),
        ({"tools": "x"}, "lists"),
    ],
)
def test_invalid_approvals_are_refused(approval: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        render_policy(SERVER, [_grant(approval)], [SESSION], now=NOW)


def test_a_document_with_a_wrongly_typed_ttl_does_not_decode() -> None:
    text = render_policy(SERVER, [_grant({"tools": ["x"]})], [SESSION], now=NOW)
    raw = json.loads(text)
    raw["grants"][0]["approval"]["ttlSeconds"] = True
    with pytest.raises(PolicyError, match="expected an integer"):
        load_policy(json.dumps(raw))


def test_index_requires_approval_for_the_named_tool_or_side_effect_only() -> None:
    text = render_policy(
        SERVER, [_grant({"sideEffects": ["destructive"], "tools": ["list_invoices"]})], [SESSION], now=NOW
    )
    policy = load_policy(text)
    index = ApprovalIndex(policy.doc)
    assert index
    who = Identity(human_id="user-123", agent_id="ops-agent", team_id=TEAM, session_id="sess-8f1b9d")
    d = policy.authorize(AuthzRequest(who, "tools/call", "list_invoices"), NOW.timestamp() - 10**8)
    assert d.allowed
    req = index.requirement(d.matched_grant_namespace, d.matched_grant, "list_invoices", d.required_side_effect)
    assert req is not None and req.ttl_seconds == DEFAULT_TTL_SECONDS and req.grant == "payments-ops-agent"
    assert index.requirement("mcp-servers", "payments-ops-agent", "other", "destructive") is not None
    assert index.requirement("mcp-servers", "payments-ops-agent", "other", "read") is None
    assert index.requirement("elsewhere", "payments-ops-agent", "list_invoices", "read") is None
    assert not ApprovalIndex(load_policy(render_policy(SERVER, [GRANT], [SESSION], now=NOW)).doc)


def test_validate_checks_a_hand_built_document() -> None:
    doc = load_policy(render_policy(SERVER, [_grant({"tools": ["x"]})], [SESSION], now=NOW)).doc
    grant = dataclasses.replace(doc.grants[0], approval=ApprovalRule((), (), 0))
    bad = dataclasses.replace(doc, grants=(grant,))
    bad = dataclasses.replace(bad, revision=compute_revision(bad))
    with pytest.raises(PolicyError, match=r"grants\[0\].approval must name"):
        validate(bad)


def test_digest_binds_caller_tool_and_canonical_arguments() -> None:
    base = {"namespace": "ns", "server": "s", "human_id": "alice", "agent_id": "a", "team_id": "t", "tool": "rm"}
    one = approval_digest(**base, arguments={"path": "/x", "force": True})
    assert one == approval_digest(**base, arguments={"force": True, "path": "/x"})  # key order is not meaning
    assert one != approval_digest(**base, arguments={"path": "/y", "force": True})
    assert one != approval_digest(**{**base, "human_id": "bob"}, arguments={"path": "/x", "force": True})
    assert one != approval_digest(**{**base, "tool": "rmdir"}, arguments={"path": "/x", "force": True})
    assert len(one) == 64
