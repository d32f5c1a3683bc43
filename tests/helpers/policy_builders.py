"""Small constructors for policy documents used across the policy tests."""

from __future__ import annotations

import dataclasses
from typing import Any

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
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z

TOOLS = (
    Tool(name="read_doc", required_trust="low", side_effect="read"),
    Tool(name="write_doc", required_trust="medium", side_effect="write"),
    Tool(name="wipe", required_trust="high", side_effect="destructive"),
    Tool(name="mystery", required_trust="low"),  # declared without a side effect
)


def grant(name: str, *, ns: str = "ns", h: str = "", a: str = "", t: str = "", trust: str = "low",
          effects: tuple[str, ...] = ("read",), rules: tuple[ToolRule, ...] = (), disabled: bool = False,
          version: str = "", prompt_rules: tuple[ToolRule, ...] = (),
          resource_rules: tuple[ToolRule, ...] = ()) -> Grant:
    """A rendered grant."""
    return Grant(name=name, namespace=ns, human_id=h, agent_id=a, team_id=t, max_trust=trust,
                 allowed_side_effects=effects, tool_rules=rules, disabled=disabled, policy_version=version,
                 prompt_rules=prompt_rules, resource_rules=resource_rules)


def session(name: str, *, ns: str = "ns", h: str = "", a: str = "", t: str = "", consented: str = "low",
            revoked: bool = False, expires_at: str = "", version: str = "") -> SessionBinding:
    """A rendered session binding."""
    return SessionBinding(name=name, namespace=ns, human_id=h, agent_id=a, team_id=t, consented_trust=consented,
                          revoked=revoked, expires_at=expires_at, policy_version=version)


def doc(*, grants: tuple[Grant, ...] = (), sessions: tuple[SessionBinding, ...] = (), tools: tuple[Tool, ...] = TOOLS,
        mode: str = "allow-list", default: str = "deny", required: bool = False, version: str = "v1",
        **extra: Any) -> PolicyDocument:
    """A valid document (revision stamped)."""
    d = PolicyDocument(
        schema_version="v1",
        server=ServerInfo(name="srv", namespace="ns"),
        policy=PolicyBlock(mode=mode, default_decision=default, policy_version=version),
        session=SessionBlock(required=required),
        tools=tools,
        grants=grants,
        sessions=sessions,
        **extra,
    )
    return stamp(d)


def stamp(d: PolicyDocument) -> PolicyDocument:
    """`d` with its revision recomputed."""
    return dataclasses.replace(d, revision=compute_revision(d))


def ask(policy: CompiledPolicy | PolicyDocument, tool: str, *, h: str = "", a: str = "", t: str = "", s: str = "",
        method: str = "tools/call", now: float = NOW) -> Decision:
    """Authorize one call."""
    compiled = policy if isinstance(policy, CompiledPolicy) else CompiledPolicy(policy)
    return compiled.authorize(AuthzRequest(Identity(h, a, t, s), method, tool), now)
