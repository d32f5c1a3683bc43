"""Reason strings the evaluator emits (upstream §3.4); audit and metrics key on these exact values."""

from __future__ import annotations

ALLOWED = "allowed"
MISSING_IDENTITY = "missing_identity"
MISSING_SESSION = "missing_session"
SESSION_NOT_FOUND = "session_not_found"
SESSION_REVOKED = "session_revoked"
SESSION_EXPIRED = "session_expired"
NO_MATCHING_GRANT = "no_matching_grant"
TOOL_NOT_GRANTED = "tool_not_granted"
TOOL_DENIED = "tool_denied"
TOOL_SIDE_EFFECT_UNKNOWN = "tool_side_effect_unknown"
SIDE_EFFECT_NOT_ALLOWED = "side_effect_not_allowed"
TRUST_TOO_LOW = "trust_too_low"
PROMPT_NOT_GRANTED = "prompt_not_granted"
PROMPT_DENIED = "prompt_denied"
PROMPT_SIDE_EFFECT_UNKNOWN = "prompt_side_effect_unknown"
RESOURCE_NOT_GRANTED = "resource_not_granted"
RESOURCE_DENIED = "resource_denied"
RESOURCE_SIDE_EFFECT_UNKNOWN = "resource_side_effect_unknown"
# Kept for compatibility with upstream's reason set; unreachable (docs/decisions/upstream.md, gap 8): a grant that
# allows the side effect always contributes a trust rank >= 1, so admin trust is never 0 there.
GRANT_WITHOUT_TRUST = "grant_without_trust"
# Gateway decisions beyond the evaluator (issue 18): not in EVALUATOR_REASONS, the evaluator never returns them.
TOOL_DEFINITION_CHANGED = "tool_definition_changed"  # live tool definition differs from its pin (or no pin)

# Decided by the sidecar after an allow (mcp_sentinel/policy/quotas.py, sidecar/quota.py), not by the evaluator.
QUOTA_EXCEEDED = "quota_exceeded"
# Approvals (issue 18): decided by the gateway after an allowed decision, not by the evaluator.
APPROVAL_REQUIRED = "approval_required"
APPROVAL_REJECTED = "approval_rejected"
APPROVAL_EXPIRED = "approval_expired"
APPROVAL_USED = "approval_used"
APPROVAL_UNAVAILABLE = "approval_unavailable"
APPROVAL_LIMIT = "approval_limit"

EVALUATOR_REASONS = frozenset(
    {
        ALLOWED,
        MISSING_IDENTITY,
        MISSING_SESSION,
        SESSION_NOT_FOUND,
        SESSION_REVOKED,
        SESSION_EXPIRED,
        NO_MATCHING_GRANT,
        TOOL_NOT_GRANTED,
        TOOL_DENIED,
        TOOL_SIDE_EFFECT_UNKNOWN,
        SIDE_EFFECT_NOT_ALLOWED,
        TRUST_TOO_LOW,
        GRANT_WITHOUT_TRUST,
        PROMPT_NOT_GRANTED,
        PROMPT_DENIED,
        PROMPT_SIDE_EFFECT_UNKNOWN,
        RESOURCE_NOT_GRANTED,
        RESOURCE_DENIED,
        RESOURCE_SIDE_EFFECT_UNKNOWN,
    }
)
