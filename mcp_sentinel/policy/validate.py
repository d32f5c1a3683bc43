"""Document validation (upstream §2.7): fail-closed, checked in a fixed order, first error wins.

Deliberate difference (docs/decisions/upstream.md, gap 6): grant and session names must be unique per
(namespace, name), not document-wide, because the renderer collects objects cluster-wide.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp_sentinel.policy.approvals import validate_approval
from mcp_sentinel.policy.document import SCHEMA_VERSION, PolicyDocument, Prompt, Resource, ToolRule
from mcp_sentinel.policy.encode import compute_revision
from mcp_sentinel.policy.errors import PolicyError
from mcp_sentinel.policy.normalize import (
    AUTH_MODES,
    DECISIONS,
    POLICY_MODES,
    SIDE_EFFECTS,
    TRUST_LEVELS,
    fold,
    go_trim,
)
from mcp_sentinel.policy.quotas import validate_quotas
from mcp_sentinel.policy.tool_digest import is_digest

_TRUST_OR_EMPTY = frozenset(("", *TRUST_LEVELS))
_EFFECT_OR_EMPTY = SIDE_EFFECTS | {""}
_DECISION_OR_EMPTY = DECISIONS | {""}


def _enum(value: str, allowed: frozenset[str], where: str, choices: str) -> None:
    if fold(value) not in allowed:
        raise PolicyError(f'{where} "{value}" must be {choices}')


def validate(doc: PolicyDocument | None) -> None:
    """Raise `PolicyError` naming the first problem (§2.7 order); return None when valid."""
    if doc is None:
        raise PolicyError("policy document is missing")
    if doc.schema_version != SCHEMA_VERSION:
        raise PolicyError(f'unsupported schema_version "{doc.schema_version}" (supported: "{SCHEMA_VERSION}")')
    if not doc.revision:
        raise PolicyError("revision is required")
    expected = compute_revision(doc)
    if doc.revision != expected:
        raise PolicyError(f"revision mismatch: document says {doc.revision}, content hashes to {expected}")
    if not go_trim(doc.server.name):
        raise PolicyError("server.name is required")
    _validate_blocks(doc)
    _validate_pins(doc)
    _validate_tools(doc)
    _validate_inventory(doc)
    _validate_grants(doc)
    _validate_sessions(doc)


def _validate_blocks(doc: PolicyDocument) -> None:
    if doc.auth is not None:
        _enum(doc.auth.mode, AUTH_MODES, "auth.mode", "none, header, oauth, mtls or platform")
        mode = fold(doc.auth.mode)
        if mode == "oauth" and not go_trim(doc.auth.issuer_url):
            raise PolicyError("auth.issuer_url is required when auth.mode is oauth")
        if mode == "mtls" and not go_trim(doc.auth.trust_domain):
            raise PolicyError("auth.trust_domain is required when auth.mode is mtls")
        _validate_resource(doc.auth.resource)
    if doc.policy is not None:
        _enum(doc.policy.mode, POLICY_MODES, "policy.mode", "allow-list or observe")
        _enum(doc.policy.default_decision, _DECISION_OR_EMPTY, "policy.default_decision", "allow or deny")


def _validate_pins(doc: PolicyDocument) -> None:
    """`server.toolPins` values are tool digests; names and opt-outs are non-empty (issue 18)."""
    for name, digest in doc.server.tool_pins.items():
        if not go_trim(name):
            raise PolicyError("server.toolPins: a tool name is empty")
        if not is_digest(digest):
            raise PolicyError(f'server.toolPins["{name}"] must be "sha256:" and 64 lowercase hex digits')
    for i, name in enumerate(doc.server.unpinned_tools):
        if not go_trim(name):
            raise PolicyError(f"server.unpinnedTools[{i}] is empty")


def _validate_resource(resource: str) -> None:
    """`auth.resource` is the server's canonical URL (RFC 8707/9728): absolute http(s), no query or fragment."""
    if not resource:
        return
    parts = urlsplit(resource)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment or "#" in resource:
        raise PolicyError(f"auth.resource must be an absolute http(s) URL without query or fragment, got {resource!r}")


def _validate_tools(doc: PolicyDocument) -> None:
    seen: set[str] = set()
    for i, tool in enumerate(doc.tools):
        where = f"tools[{i}]"
        if not go_trim(tool.name):
            raise PolicyError(f"{where}.name is required")
        if tool.name in seen:
            raise PolicyError(f'{where}.name "{tool.name}" is duplicated')
        seen.add(tool.name)
        _enum(tool.required_trust, _TRUST_OR_EMPTY, f"{where}.required_trust", "low, medium or high")
        _enum(tool.side_effect, _EFFECT_OR_EMPTY, f"{where}.side_effect", "read, write or destructive")


def _validate_inventory(doc: PolicyDocument) -> None:
    seen: set[tuple[str, str]] = set()
    entries: list[tuple[str, Prompt | Resource]] = [(f"prompts[{i}]", p) for i, p in enumerate(doc.prompts)]
    entries += [(f"resources[{i}]", r) for i, r in enumerate(doc.resources)]
    for where, item in entries:
        if not go_trim(item.name):
            raise PolicyError(f"{where}.name is required")
        key = (where.partition("[")[0], item.name)
        if key in seen:
            raise PolicyError(f'{where}.name "{item.name}" is duplicated')
        seen.add(key)
        _enum(item.required_trust, _TRUST_OR_EMPTY, f"{where}.required_trust", "low, medium or high")
        _enum(item.side_effect, _EFFECT_OR_EMPTY, f"{where}.side_effect", "read, write or destructive")


def _validate_rules(grant_name: str, where: str, rules: tuple[ToolRule, ...]) -> None:
    rule_names: set[str] = set()
    for j, rule in enumerate(rules):
        rwhere = f"{where}[{j}]"
        if not go_trim(rule.name):
            raise PolicyError(f"{rwhere}.name is required")
        if rule.name in rule_names:
            raise PolicyError(f'{rwhere}.name "{rule.name}" is duplicated in grant "{grant_name}"')
        rule_names.add(rule.name)
        _enum(rule.decision, _DECISION_OR_EMPTY, f"{rwhere}.decision", "allow or deny")
        _enum(rule.required_trust, _TRUST_OR_EMPTY, f"{rwhere}.required_trust", "low, medium or high")


def _validate_grants(doc: PolicyDocument) -> None:
    seen: set[tuple[str, str]] = set()
    for i, grant in enumerate(doc.grants):
        where = f"grants[{i}]"
        if not go_trim(grant.name):
            raise PolicyError(f"{where}.name is required")
        key = (grant.namespace, grant.name)
        if key in seen:
            raise PolicyError(f'{where} "{grant.namespace}/{grant.name}" is duplicated')
        seen.add(key)
        _enum(grant.max_trust, _TRUST_OR_EMPTY, f"{where}.max_trust", "low, medium or high")
        for j, effect in enumerate(grant.allowed_side_effects):
            _enum(effect, SIDE_EFFECTS, f"{where}.allowed_side_effects[{j}]", "read, write or destructive")
        _validate_rules(grant.name, f"{where}.tool_rules", grant.tool_rules)
        _validate_rules(grant.name, f"{where}.prompt_rules", grant.prompt_rules)
        _validate_rules(grant.name, f"{where}.resource_rules", grant.resource_rules)
        validate_quotas(f"{where}.quotas", grant.quotas)
        if grant.approval is not None:
            validate_approval(grant.approval, f"{where}.approval")


def _validate_sessions(doc: PolicyDocument) -> None:
    seen: set[tuple[str, str]] = set()
    for i, session in enumerate(doc.sessions):
        where = f"sessions[{i}]"
        if not go_trim(session.name):
            raise PolicyError(f"{where}.name is required")
        key = (session.namespace, session.name)
        if key in seen:
            raise PolicyError(f'{where} "{session.namespace}/{session.name}" is duplicated')
        seen.add(key)
        _enum(session.consented_trust, _TRUST_OR_EMPTY, f"{where}.consented_trust", "low, medium or high")
