"""The policy evaluator (upstream §3.3), compiled once per document for a fast hot path.

`CompiledPolicy(doc)` builds its indexes at load time: grants by subject key (each field either
the value or "" for "not constrained"), sessions by name, tools by name, and expiry instants as
epoch floats. `authorize` then does a handful of dict lookups: with N grants, an identity probes
at most 8 subject keys instead of scanning N grants.

Deliberate differences from upstream (docs/decisions/policy.md):
* §11 #1: an all-empty grant subject is a wildcard matching any caller with an identity.
* §11 #3: `tool_not_granted` always denies (403), even under `default_decision: allow`.
* §11 #4: observe mode allows but reports the allow-list verdict in `would_deny_reason`.
* §11 #6: same-named sessions in several namespaces are tried in (namespace, name) order.
* §11 #7: unparseable `expires_at` means expired; expired iff `now >= expires_at`.
* Prompts (`prompts/get`) and resources (`resources/read`) are decided exactly like tools, against
  their own inventories and the grants' `prompt_rules`/`resource_rules` (upstream governed tools only).
* Every other method except `initialize`, `ping`, `server/discover` and `notifications/*` needs an
  identity (`missing_identity`, 401); upstream let any caller list, read and get.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any

from mcp_sentinel.policy import reasons as R
from mcp_sentinel.policy.decode import parse_document
from mcp_sentinel.policy.document import Grant, PolicyDocument, SessionBinding, ToolRule
from mcp_sentinel.policy.normalize import fold, parse_rfc3339, risk_level, side_effect, trust_label, trust_rank
from mcp_sentinel.policy.quotas import GrantQuotas, compile_quotas
from mcp_sentinel.policy.types import (
    PROMPT_GET_METHOD,
    PUBLIC_METHODS,
    RESOURCE_READ_METHOD,
    TOOL_CALL_METHODS,
    AuthzRequest,
    Decision,
    Identity,
)
from mcp_sentinel.policy.validate import validate

_SubjectKey = tuple[str, str, str]
_UNKNOWN_TOOL = (1, "", "")
_TOOL, _PROMPT, _RESOURCE = 0, 1, 2
# Per kind: (not granted, rule denies, side effect unknown).
_KIND_REASONS = (
    (R.TOOL_NOT_GRANTED, R.TOOL_DENIED, R.TOOL_SIDE_EFFECT_UNKNOWN),
    (R.PROMPT_NOT_GRANTED, R.PROMPT_DENIED, R.PROMPT_SIDE_EFFECT_UNKNOWN),
    (R.RESOURCE_NOT_GRANTED, R.RESOURCE_DENIED, R.RESOURCE_SIDE_EFFECT_UNKNOWN),
)
# The list results the gateway filters per caller: result key -> how an item names its target.
LIST_KEYS = ("tools", "prompts", "resources", "resourceTemplates")
_TEMPLATE_VAR = re.compile(r"\{([+#./;?&]?)[^{}]*\}")


def _template_regex(uri: str) -> re.Pattern[str] | None:
    """An RFC 6570 URI template as a full-match regex (None when `uri` has no expression)."""
    if "{" not in uri:
        return None
    out: list[str] = []
    pos = 0
    for m in _TEMPLATE_VAR.finditer(uri):
        out.append(re.escape(uri[pos : m.start()]))
        op = m.group(1)
        # Simple expansion stays inside one path segment; reserved/fragment expansion may span them.
        out.append(".*" if op in ("+", "#") else "[^/?#]*" if op in ("", ".", ";") else "[^#]*")
        pos = m.end()
    out.append(re.escape(uri[pos:]))
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True, slots=True)
class _CompiledGrant:
    order: int
    grant: Grant
    policy_version: str
    max_rank: int
    effects: frozenset[str]
    # Per kind (tools, prompts, resources): None when the grant has no rules for that kind (covers
    # every entry of it); else entry name -> (is_deny, required rank).
    kinds: tuple[dict[str, tuple[bool, int]] | None, ...]


@dataclass(frozen=True, slots=True)
class _CompiledSession:
    binding: SessionBinding
    subject: _SubjectKey
    policy_version: str
    consented_rank: int  # 0 when consented_trust is empty (then admin trust applies)
    expires: float | None  # None: never; -inf: unparseable, i.e. always expired

    def matches(self, identity: Identity) -> bool:
        h, a, t = self.subject
        return (
            (not h or h == identity.human_id)
            and (not a or a == identity.agent_id)
            and (not t or t == identity.team_id)
            and bool(h or a or t)
        )

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


class CompiledPolicy:
    """A validated-or-not document plus the indexes `authorize` needs; immutable after construction."""

    __slots__ = (
        "_by_subject",
        "_default_allow",
        "_inventories",
        "_observe",
        "_resource_templates",
        "_resource_uris",
        "_session_required",
        "_sessions",
        "_tools",
        "_version",
        "doc",
        "quotas",
    )

    def __init__(self, doc: PolicyDocument) -> None:
        self.doc = doc
        policy = doc.policy
        self._version = policy.policy_version if policy else ""
        self._observe = policy is not None and fold(policy.mode) == "observe"
        self._default_allow = policy is not None and fold(policy.default_decision) == "allow"
        self._session_required = doc.session is not None and doc.session.required
        self._tools: dict[str, tuple[int, str, str]] = {}
        for tool in doc.tools:
            rank = trust_rank(tool.required_trust)
            effect = side_effect(tool.side_effect)
            self._tools.setdefault(tool.name, (rank, effect, risk_level(tool.risk_level, effect, rank)))
        prompts: dict[str, tuple[int, str, str]] = {}
        for prompt in doc.prompts:
            rank, effect = trust_rank(prompt.required_trust), side_effect(prompt.side_effect)
            prompts.setdefault(prompt.name, (rank, effect, risk_level(prompt.risk_level, effect, rank)))
        resources: dict[str, tuple[int, str, str]] = {}
        self._resource_uris: dict[str, str] = {}
        self._resource_templates: list[tuple[re.Pattern[str], str]] = []
        for res in doc.resources:
            rank, effect = trust_rank(res.required_trust), side_effect(res.side_effect)
            resources.setdefault(res.name, (rank, effect, risk_level(res.risk_level, effect, rank)))
            if res.uri:
                pattern = _template_regex(res.uri)
                if pattern is None:
                    self._resource_uris.setdefault(res.uri, res.name)
                else:
                    self._resource_templates.append((pattern, res.name))
        self._inventories = (self._tools, prompts, resources)
        # Counted by the sidecar after an allow, against the grant the allow is attributed to.
        self.quotas: GrantQuotas = compile_quotas(doc.grants)
        self._by_subject: dict[_SubjectKey, list[_CompiledGrant]] = {}
        ordered = sorted(doc.grants, key=lambda g: (g.namespace, g.name))
        for order, grant in enumerate(ordered):
            compiled = _CompiledGrant(
                order=order,
                grant=grant,
                policy_version=grant.policy_version or self._version,
                max_rank=trust_rank(grant.max_trust),
                effects=frozenset(e for e in map(side_effect, grant.allowed_side_effects) if e),
                kinds=(
                    _compile_rules(grant.tool_rules) if grant.tool_rules else None,
                    _compile_rules(grant.prompt_rules) if grant.prompt_rules else None,
                    _compile_rules(grant.resource_rules) if grant.resource_rules else None,
                ),
            )
            key = (grant.human_id, grant.agent_id, grant.team_id)
            self._by_subject.setdefault(key, []).append(compiled)
        self._sessions: dict[str, list[_CompiledSession]] = {}
        for binding in sorted(doc.sessions, key=lambda s: (s.namespace, s.name)):
            expires = None
            if binding.expires_at:
                parsed = parse_rfc3339(binding.expires_at)
                expires = float("-inf") if parsed is None else parsed
            self._sessions.setdefault(binding.name, []).append(
                _CompiledSession(
                    binding=binding,
                    subject=(binding.human_id, binding.agent_id, binding.team_id),
                    policy_version=binding.policy_version or self._version,
                    consented_rank=trust_rank(binding.consented_trust) if binding.consented_trust else 0,
                    expires=expires,
                )
            )

    @property
    def revision(self) -> str:
        """The document's revision (what `/config/status` and audit events report)."""
        return self.doc.revision

    def session_binding(self, namespace: str, name: str, now: float) -> tuple[SessionBinding, bool] | None:
        """The session `name` of `namespace` and whether it is expired at `now` (None: no such binding).

        For callers that know both coordinates (mTLS identities); the expiry rule is the evaluator's.
        """
        for candidate in self._sessions.get(name, ()):
            if candidate.binding.namespace == namespace:
                return candidate.binding, candidate.expired(now)
        return None

    def _matching_grants(self, identity: Identity) -> list[_CompiledGrant]:
        found: list[_CompiledGrant] = []
        index = self._by_subject
        h, a, t = identity.human_id, identity.agent_id, identity.team_id
        for key in product((h, "") if h else ("",), (a, "") if a else ("",), (t, "") if t else ("",)):
            hits = index.get(key)
            if hits:
                found.extend(hits)
        if len(found) > 1:
            found.sort(key=_order)
        return found

    def authorize(self, req: AuthzRequest, now: float) -> Decision:
        """Decide one request at epoch time `now` (upstream §3.3 order, with the documented changes).

        `tool_name` carries the target: the tool or prompt name, or the URI of a `resources/read`.
        """
        method = req.rpc_method
        if method in TOOL_CALL_METHODS:
            return self._decide(req.identity, _TOOL, req.tool_name, now)
        if method == PROMPT_GET_METHOD:
            return self._decide(req.identity, _PROMPT, req.tool_name, now)
        if method == RESOURCE_READ_METHOD:
            return self._decide(req.identity, _RESOURCE, self.resource_name(req.tool_name), now)
        if method in PUBLIC_METHODS or method.startswith("notifications/"):
            return Decision(policy_version=self._version)
        d = Decision(policy_version=self._version)
        ident = req.identity
        if not (ident.human_id or ident.agent_id or ident.team_id):
            _deny(d, 401, R.MISSING_IDENTITY)
            if self._observe:
                d.would_deny_reason = d.reason
                d.allowed, d.status, d.reason = True, 200, R.ALLOWED
        return d

    def resource_name(self, uri: str) -> str:
        """The inventory name of the resource at `uri` (exact URIs first, then templates); "" if undeclared."""
        name = self._resource_uris.get(uri)
        if name is not None:
            return name
        for pattern, tname in self._resource_templates:
            if pattern.fullmatch(uri):
                return tname
        return ""

    def _decide(self, identity: Identity, kind: int, name: str, now: float) -> Decision:
        target = self._inventories[kind].get(name, _UNKNOWN_TOOL) if name else _UNKNOWN_TOOL
        verdict = self._evaluate(identity, name, now, target, kind)
        if not self._observe:
            return verdict
        if not verdict.allowed:
            verdict.would_deny_reason = verdict.reason
        verdict.allowed, verdict.status, verdict.reason = True, 200, R.ALLOWED
        return verdict

    def tool_visible(self, identity: Identity, tool_name: str, now: float) -> bool:
        """True iff a `tools/call` of `tool_name` by `identity` at `now` would be allowed."""
        return self._decide(identity, _TOOL, tool_name, now).allowed

    def item_visible(self, identity: Identity, list_key: str, item: Mapping[str, Any], now: float) -> bool:
        """True iff `identity` may use one entry of a `tools`/`prompts`/`resources`/`resourceTemplates` list.

        Tools and prompts by `name`; resources by `uri` (what `resources/read` is decided on);
        templates by `name`, the inventory entry declaring them. Anything else is not visible.
        """
        if list_key == "resources":
            uri = item.get("uri")
            name = self.resource_name(uri) if isinstance(uri, str) else ""
            return bool(name) and self._decide(identity, _RESOURCE, name, now).allowed
        value = item.get("name")
        if not isinstance(value, str):
            return False
        kind = _TOOL if list_key == "tools" else _PROMPT if list_key == "prompts" else _RESOURCE
        if kind == _RESOURCE and list_key != "resourceTemplates":
            return False
        return self._decide(identity, kind, value, now).allowed

    def visible_tools(self, identity: Identity, tool_names: Iterable[str], now: float) -> list[str]:
        """The subset of `tool_names` (order kept) that `identity` may call; for filtering `tools/list`."""
        return [name for name in tool_names if self.tool_visible(identity, name, now)]

    def _default(self, d: Decision, reason: str) -> Decision:
        d.reason = reason
        if not self._default_allow:
            d.allowed, d.status = False, 403
        return d

    def _evaluate(
        self, ident: Identity, name: str, now: float, tool: tuple[int, str, str], kind: int = _TOOL
    ) -> Decision:
        required, effect, risk = tool
        not_granted, rule_denied, effect_unknown = _KIND_REASONS[kind]
        d = Decision(policy_version=self._version, risk_level=risk)
        if not (ident.human_id or ident.agent_id or ident.team_id):
            return _deny(d, 401, R.MISSING_IDENTITY)
        session_id = ident.session_id
        if self._session_required and not session_id:
            return _deny(d, 401, R.MISSING_SESSION)
        session: _CompiledSession | None = None
        if session_id:
            pinned = ident.session_namespace
            for candidate in self._sessions.get(session_id, ()):
                if candidate.matches(ident) and (not pinned or candidate.binding.namespace == pinned):
                    session = candidate
                    break
        if self._session_required:
            if session is None:
                return _deny(d, 401, R.SESSION_NOT_FOUND)
            if session.binding.revoked or session.expired(now):
                _attribute_session(d, session)
                d.policy_version = session.policy_version
                return _deny(d, 401, R.SESSION_REVOKED if session.binding.revoked else R.SESSION_EXPIRED)
        elif session is not None and (session.binding.revoked or session.expired(now)):
            session = None  # optional sessions that are dead are ignored, not fatal
        if session is not None:
            _attribute_session(d, session)

        grants = self._matching_grants(ident)
        if not grants:
            return self._default(d, R.NO_MATCHING_GRANT)

        covered = effect_ok = False
        attributed: _CompiledGrant | None = None
        admin = 0
        for g in grants:
            if g.grant.disabled:
                continue
            allows_effect = effect in g.effects
            rules = g.kinds[kind]
            if rules is None:
                covered = True
                if attributed is None:
                    attributed = g
                if allows_effect:
                    if not effect_ok or g.max_rank > admin:
                        attributed = g
                    effect_ok = True
                    admin = max(admin, g.max_rank)
                continue
            rule = rules.get(name)
            if rule is None:
                continue
            is_deny, rule_rank = rule
            if is_deny:
                _attribute_grant(d, g)
                return _deny(d, 403, rule_denied)
            covered = True
            if attributed is None:
                attributed = g
            if allows_effect:
                if not effect_ok or g.max_rank > admin:
                    attributed = g
                effect_ok = True
                if rule_rank > required:
                    required = rule_rank
                    attributed = g
                admin = max(admin, g.max_rank)

        if not covered or attributed is None:
            # §11 #3: the caller is known to the policy, so the default decision does not apply.
            return _deny(d, 403, not_granted)
        _attribute_grant(d, attributed)
        d.required_trust = trust_label(required)
        if not effect:
            return _deny(d, 403, effect_unknown)
        d.required_side_effect = effect
        if not effect_ok:
            return _deny(d, 403, R.SIDE_EFFECT_NOT_ALLOWED)
        consented = session.consented_rank if session is not None and session.consented_rank else admin
        effective = min(admin, consented)
        d.admin_trust, d.consented_trust, d.effective_trust = (
            trust_label(admin),
            trust_label(consented),
            trust_label(effective),
        )
        if effective < required:
            return _deny(d, 403, R.TRUST_TOO_LOW)
        return d


def _order(g: _CompiledGrant) -> int:
    return g.order


def _compile_rules(grant_rules: tuple[ToolRule, ...]) -> dict[str, tuple[bool, int]]:
    rules: dict[str, tuple[bool, int]] = {}
    for rule in grant_rules:
        rules.setdefault(rule.name, (fold(rule.decision) == "deny", trust_rank(rule.required_trust)))
    return rules


def _deny(d: Decision, status: int, reason: str) -> Decision:
    d.allowed, d.status, d.reason = False, status, reason
    return d


def _attribute_grant(d: Decision, g: _CompiledGrant) -> None:
    d.matched_grant, d.matched_grant_namespace = g.grant.name, g.grant.namespace
    d.policy_version = g.policy_version


def _attribute_session(d: Decision, s: _CompiledSession) -> None:
    d.matched_session, d.matched_session_namespace = s.binding.name, s.binding.namespace


def load_policy(raw: bytes | str) -> CompiledPolicy:
    """Parse, validate (fail-closed) and compile `policy.json` text.

    Raises:
        PolicyError: the document does not decode or fails any §2.7 check.
    """
    doc = parse_document(raw)
    validate(doc)
    return CompiledPolicy(doc)
