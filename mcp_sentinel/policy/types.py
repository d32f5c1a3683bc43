"""Value types shared by the policy evaluator and its callers (sidecar, API, tests).

Stdlib only: the sidecar imports this on its hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TOOL_CALL_METHODS = frozenset({"tools/call", "call_tool"})
PROMPT_GET_METHOD = "prompts/get"
RESOURCE_READ_METHOD = "resources/read"
# Decided per target like tools/call (the target is the tool or prompt name, or the resource URI).
GOVERNED_METHODS = frozenset({*TOOL_CALL_METHODS, PROMPT_GET_METHOD, RESOURCE_READ_METHOD})
# Methods any caller may send without an identity (besides `notifications/*`): the handshake.
PUBLIC_METHODS = frozenset({"initialize", "ping", "server/discover"})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: values already trimmed; empty string means absent."""

    human_id: str = ""
    agent_id: str = ""
    team_id: str = ""
    session_id: str = ""
    # Set when the session binding was already resolved by namespace and name (mTLS: the SPIFFE ID
    # names both); the evaluator then considers only that namespace's binding of `session_id`.
    session_namespace: str = ""


@dataclass(frozen=True, slots=True)
class AuthzRequest:
    """One authorization question: may `identity` invoke `rpc_method` (on `tool_name`)?"""

    identity: Identity
    rpc_method: str
    tool_name: str = ""


@dataclass(slots=True)
class Decision:
    """The evaluator's answer; field names match the audit payload keys (upstream §3.1)."""

    allowed: bool = True
    status: int = 200
    reason: str = "allowed"
    policy_version: str = ""
    required_trust: str = ""
    required_side_effect: str = ""
    risk_level: str = ""
    admin_trust: str = ""
    consented_trust: str = ""
    effective_trust: str = ""
    matched_grant: str = ""
    matched_grant_namespace: str = ""
    matched_session: str = ""
    matched_session_namespace: str = ""
    # Observe mode: what allow-list mode would have decided (upstream §11.4: observe was silent).
    would_deny_reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def decision(self) -> str:
        """`allow` or `deny`, the audit payload's `decision` value."""
        return "allow" if self.allowed else "deny"
