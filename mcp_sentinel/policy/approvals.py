"""Approval requirements of grants (issue 18 item 3): shape, validation, rendering, lookup, digest.

A grant's `approval` names tool names and side-effect classes whose calls a human must approve
first. The evaluator is untouched: an allowed decision names the grant that allowed it
(`matched_grant`), and `ApprovalIndex.requirement` tells whether that grant wants an approval for
the call. A caller holding a second grant without `approval` that also allows the call gets that
grant's answer only if the evaluator attributes the call to it; grants stay additive.

What an approval is bound to is `approval_digest`: the caller (human, agent, team), the server and
the tool, and the canonical arguments. Stdlib only: the sidecar imports this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_sentinel.policy.document import ApprovalRule, PolicyDocument
from mcp_sentinel.policy.errors import PolicyError
from mcp_sentinel.policy.normalize import SIDE_EFFECTS, fold, go_trim

DEFAULT_TTL_SECONDS = 900
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 86400
MAX_TOOLS = 256


def validate_approval(rule: ApprovalRule, where: str) -> None:
    """Raise PolicyError for an approval that names nothing, an unknown side effect or a bad ttl."""
    if not rule.side_effects and not rule.tools:
        raise PolicyError(f"{where} must name at least one of sideEffects or tools")
    for i, effect in enumerate(rule.side_effects):
        if fold(effect) not in SIDE_EFFECTS:
            raise PolicyError(f'{where}.sideEffects[{i}] "{effect}" must be read, write or destructive')
    if len(rule.tools) > MAX_TOOLS:
        raise PolicyError(f"{where}.tools has more than {MAX_TOOLS} entries")
    for i, tool in enumerate(rule.tools):
        if not go_trim(tool):
            raise PolicyError(f"{where}.tools[{i}] is empty")
    # 0 is "not given" in the document: the default applies.
    if rule.ttl_seconds and not MIN_TTL_SECONDS <= rule.ttl_seconds <= MAX_TTL_SECONDS:
        raise PolicyError(f"{where}.ttlSeconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}")


def render_approval(spec: Mapping[str, Any]) -> ApprovalRule | None:
    """The document's `approval` from a grant's `spec.approval` (None when absent)."""
    raw = spec.get("approval")
    if not isinstance(raw, Mapping):
        return None
    effects = raw.get("sideEffects") or []
    tools = raw.get("tools") or []
    ttl = raw.get("ttlSeconds")
    if not isinstance(effects, list) or not isinstance(tools, list):
        raise PolicyError("approval.sideEffects and approval.tools must be lists")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
        raise PolicyError("approval.ttlSeconds must be an integer")
    return ApprovalRule(
        side_effects=tuple(str(e).strip().lower() for e in effects),
        tools=tuple(str(t) for t in tools),
        ttl_seconds=DEFAULT_TTL_SECONDS if ttl is None else ttl,
    )


@dataclass(frozen=True, slots=True)
class Requirement:
    """A call needs an approval: the grant asking for it and how long a request (and an approval) lives."""

    grant: str
    grant_namespace: str
    ttl_seconds: int


class ApprovalIndex:
    """Per document: grant (namespace, name) -> its approval rule, for a dict lookup per allowed call."""

    __slots__ = ("_rules",)

    def __init__(self, doc: PolicyDocument) -> None:
        self._rules: dict[tuple[str, str], tuple[frozenset[str], frozenset[str], int]] = {}
        for grant in doc.grants:
            rule = grant.approval
            if rule is None:
                continue
            self._rules[(grant.namespace, grant.name)] = (
                frozenset(rule.tools),
                frozenset(fold(e) for e in rule.side_effects),
                rule.ttl_seconds or DEFAULT_TTL_SECONDS,
            )

    def __bool__(self) -> bool:
        return bool(self._rules)

    def requirement(self, grant_namespace: str, grant: str, tool: str, side_effect: str) -> Requirement | None:
        """The approval an allowed call of `tool` (with `side_effect`) under `grant` needs, or None."""
        found = self._rules.get((grant_namespace, grant))
        if found is None:
            return None
        tools, effects, ttl = found
        if tool in tools or (side_effect and side_effect in effects):
            return Requirement(grant, grant_namespace, ttl)
        return None


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same arguments always give the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def approval_digest(
    *, namespace: str, server: str, human_id: str, agent_id: str, team_id: str, tool: str, arguments: Any
) -> str:
    """Hex sha256 naming one approvable call: who, where, which tool, with exactly which arguments.

    The agent session is left out on purpose: sessions are transport (a reconnecting client gets a
    new one) while the approver decides about a person's agent doing one thing.
    """
    subject = {
        "namespace": namespace,
        "server": server,
        "human": human_id,
        "agent": agent_id,
        "team": team_id,
        "tool": tool,
        "arguments": arguments,
    }
    return hashlib.sha256(canonical_json(subject)).hexdigest()
