"""Render a server's policy document from Kubernetes objects (upstream §2.2, §2.4, §2.6).

Inputs are plain dicts as the Kubernetes API returns custom objects (`metadata`, camelCase
`spec`). The API and the workflows call `render_policy`; the sidecar only reads its output.

Tenancy (issue 14): a grant or session counts only when it lives in the server's own namespace
or in a namespace the server admits through its `mcp-sentinel.io/admit-grants-from` annotation
(comma list; the annotation is on the MCPServer, so only those who administer the server's
namespace can admit). Anyone else's object whose `serverRef` points here is ignored. The
server's team is the platform's namespace → team mapping when the caller knows it
(`namespace_team`); a `spec.teamID` that disagrees is ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from mcp_sentinel.policy.approvals import render_approval
from mcp_sentinel.policy.decode import parse_document
from mcp_sentinel.policy.document import (
    SCHEMA_VERSION,
    AuthBlock,
    Grant,
    PolicyBlock,
    PolicyDocument,
    Prompt,
    Resource,
    ServerInfo,
    SessionBinding,
    SessionBlock,
    Tool,
    ToolRule,
)
from mcp_sentinel.policy.encode import compute_revision, to_pretty_json
from mcp_sentinel.policy.errors import PolicyError
from mcp_sentinel.policy.normalize import format_rfc3339, go_trim, parse_rfc3339
from mcp_sentinel.policy.quotas import render_quotas
from mcp_sentinel.policy.validate import validate

Obj = Mapping[str, Any]

ADMIT_ANNOTATION = "mcp-sentinel.io/admit-grants-from"


def _map(obj: Any, key: str) -> Mapping[str, Any]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _str(obj: Mapping[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise PolicyError(f"{key}: expected a string, got {type(value).__name__}")
    return value


def _meta(obj: Obj) -> tuple[str, str]:
    meta = _map(obj, "metadata")
    return _str(meta, "name"), _str(meta, "namespace")


def _targets(obj: Obj, server_name: str, server_ns: str) -> bool:
    ref = _map(_map(obj, "spec"), "serverRef")
    own_ns = _meta(obj)[1]
    return _str(ref, "name") == server_name and (_str(ref, "namespace") or own_ns) == server_ns


def admitted_namespaces(server: Obj) -> frozenset[str]:
    """Namespaces whose grants and sessions the server accepts: its own plus those its annotation lists."""
    annotations = _map(_map(server, "metadata"), "annotations")
    raw = annotations.get(ADMIT_ANNOTATION)
    extra = {n.strip() for n in raw.split(",") if n.strip()} if isinstance(raw, str) else set()
    return frozenset({_meta(server)[1], *extra})


def _auth(spec: Mapping[str, Any]) -> AuthBlock:
    a = _map(spec, "auth")
    return AuthBlock(
        # Platform tokens unless the server says otherwise: header identity is for in-cluster adapters only.
        mode=_str(a, "mode", "platform"),
        human_id_header=_str(a, "humanIDHeader", "X-MCP-Human-ID"),
        agent_id_header=_str(a, "agentIDHeader", "X-MCP-Agent-ID"),
        team_id_header=_str(a, "teamIDHeader", "X-MCP-Team-ID"),
        session_id_header=_str(a, "sessionIDHeader", "X-MCP-Agent-Session"),
        token_header=_str(a, "tokenHeader", "Authorization"),
        issuer_url=_str(a, "issuerURL"),
        audience=_str(a, "audience"),
        trust_domain=_str(a, "trustDomain"),
        resource=_str(a, "resource"),
    )


def _policy(spec: Mapping[str, Any]) -> PolicyBlock:
    p = _map(spec, "policy")
    return PolicyBlock(
        mode=_str(p, "mode", "allow-list"),
        default_decision=_str(p, "defaultDecision", "deny"),
        enforce_on=_str(p, "enforceOn", "call_tool"),
        policy_version=_str(p, "policyVersion", "v1"),
    )


def _session(spec: Mapping[str, Any]) -> SessionBlock:
    s = _map(spec, "session")
    return SessionBlock(
        required=s.get("required") is True,
        store=_str(s, "store", "kubernetes"),
        header_name=_str(s, "headerName", "X-MCP-Agent-Session"),
        max_lifetime=_str(s, "maxLifetime", "24h"),
        idle_timeout=_str(s, "idleTimeout", "1h"),
        upstream_token_header=_str(s, "upstreamTokenHeader", "Authorization"),
    )


def _tool(t: Mapping[str, Any]) -> Tool:
    labels = _map(t, "labels")
    return Tool(
        name=_str(t, "name"),
        description=_str(t, "description"),
        required_trust=_str(t, "requiredTrust", "low"),
        side_effect=_str(t, "sideEffect"),
        risk_level=_str(t, "riskLevel"),
        labels={str(k): str(v) for k, v in labels.items()},
    )


def _prompt(p: Mapping[str, Any]) -> Prompt:
    # Getting a prompt reads it: `read` unless the server declares otherwise (same rules as tools after that).
    return Prompt(
        name=_str(p, "name"),
        description=_str(p, "description"),
        required_trust=_str(p, "requiredTrust", "low"),
        side_effect=_str(p, "sideEffect", "read"),
        risk_level=_str(p, "riskLevel"),
        labels={str(k): str(v) for k, v in _map(p, "labels").items()},
    )


def _resource(r: Mapping[str, Any]) -> Resource:
    return Resource(
        name=_str(r, "name"),
        uri=_str(r, "uri"),
        description=_str(r, "description"),
        required_trust=_str(r, "requiredTrust", "low"),
        side_effect=_str(r, "sideEffect", "read"),
        risk_level=_str(r, "riskLevel"),
        labels={str(k): str(v) for k, v in _map(r, "labels").items()},
    )


def _pins(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`toolPins` / `unpinnedTools` of an MCPServer spec (validate() checks their shape)."""
    pins = {str(k): v for k, v in _map(spec, "toolPins").items()}
    unpinned = spec.get("unpinnedTools") or []
    return {
        "tool_pins": {k: v if isinstance(v, str) else repr(v) for k, v in pins.items()},
        "unpinned_tools": tuple(sorted({str(t) for t in unpinned})) if isinstance(unpinned, list) else ("",),
    }


def _rules(spec: Mapping[str, Any], key: str) -> tuple[ToolRule, ...]:
    return tuple(
        ToolRule(
            name=_str(r, "name"),
            decision=_str(r, "decision", "allow"),
            required_trust=_str(r, "requiredTrust", "low"),
        )
        for r in spec.get(key) or []
        if isinstance(r, Mapping)
    )


def _subject(spec: Mapping[str, Any], server_team: str) -> tuple[str, str, str]:
    # Identity headers are trimmed by the gateway, so untrimmed subjects could never match.
    subject = _map(spec, "subject")
    team = go_trim(_str(subject, "teamID"))
    # §11 #2 (kept deliberately): the server's team is a tenancy boundary, so it fills an empty team.
    return go_trim(_str(subject, "humanID")), go_trim(_str(subject, "agentID")), team or server_team


def _grant(obj: Obj, server_team: str) -> Grant:
    name, namespace = _meta(obj)
    spec = _map(obj, "spec")
    human, agent, team = _subject(spec, server_team)
    effects = spec.get("allowedSideEffects") or []
    return Grant(
        name=name,
        namespace=namespace,
        human_id=human,
        agent_id=agent,
        team_id=team,
        max_trust=_str(spec, "maxTrust", "low"),
        allowed_side_effects=tuple(str(e) for e in effects),
        policy_version=_str(spec, "policyVersion"),
        disabled=spec.get("disabled") is True,
        tool_rules=_rules(spec, "toolRules"),
        prompt_rules=_rules(spec, "promptRules"),
        resource_rules=_rules(spec, "resourceRules"),
        quotas=render_quotas(spec),
        approval=render_approval(spec),
    )


def _expires(value: str) -> str:
    if not value:
        return ""
    parsed = parse_rfc3339(value)
    # Unparseable text is kept verbatim: the evaluator then treats the session as expired (fail-closed).
    return value if parsed is None else format_rfc3339(parsed)


def _session_binding(obj: Obj, server_team: str) -> SessionBinding:
    name, namespace = _meta(obj)
    spec = _map(obj, "spec")
    human, agent, team = _subject(spec, server_team)
    ref = _map(spec, "upstreamTokenSecretRef")
    ref_name, ref_key = _str(ref, "name"), _str(ref, "key")
    return SessionBinding(
        name=name,
        namespace=namespace,
        human_id=human,
        agent_id=agent,
        team_id=team,
        consented_trust=_str(spec, "consentedTrust", "low"),
        revoked=spec.get("revoked") is True,
        expires_at=_expires(_str(spec, "expiresAt")),
        policy_version=_str(spec, "policyVersion"),
        upstream_token_ref=f"{ref_name}/{ref_key}" if ref_name and ref_key else "",
    )


def render_document(
    server: Obj,
    grants: Iterable[Obj],
    sessions: Iterable[Obj],
    *,
    cluster: str = "local",
    namespace_team: str | None = None,
) -> PolicyDocument:
    """The server's document with its revision set and no `generated_at` (not yet validated).

    `namespace_team` is the team the platform maps the server's namespace to; when given it is the
    server's team whatever `spec.teamID` says. Grants and sessions from namespaces the server does
    not admit are left out.
    """
    name, namespace = _meta(server)
    spec = _map(server, "spec")
    team = go_trim(_str(spec, "teamID")) if namespace_team is None else namespace_team
    admitted = admitted_namespaces(server)

    def ours(obj: Obj) -> bool:
        return _targets(obj, name, namespace) and _meta(obj)[1] in admitted

    gateway_on = _map(spec, "gateway").get("enabled") is True
    doc = PolicyDocument(
        schema_version=SCHEMA_VERSION,
        server=ServerInfo(name=name, namespace=namespace, team_id=team, cluster=cluster, **_pins(spec)),
        auth=_auth(spec) if gateway_on or "auth" in spec else None,
        policy=_policy(spec) if gateway_on or "policy" in spec else None,
        session=_session(spec) if gateway_on or "session" in spec else None,
        tools=tuple(_tool(t) for t in spec.get("tools") or [] if isinstance(t, Mapping)),
        grants=tuple(_grant(g, team) for g in grants if ours(g)),
        sessions=tuple(_session_binding(s, team) for s in sessions if ours(s)),
        prompts=tuple(_prompt(p) for p in spec.get("prompts") or [] if isinstance(p, Mapping)),
        resources=tuple(_resource(r) for r in spec.get("mcpResources") or [] if isinstance(r, Mapping)),
    )
    return dataclasses.replace(doc, revision=compute_revision(doc))


def _unchanged(existing_text: str | bytes | None, revision: str) -> bool:
    if not existing_text:
        return False
    try:
        existing = parse_document(existing_text)
    except PolicyError:
        return False
    return existing.revision == revision and compute_revision(existing) == existing.revision


def render_policy(
    server: Obj,
    grants: Iterable[Obj],
    sessions: Iterable[Obj],
    *,
    cluster: str = "local",
    existing_text: str | bytes | None = None,
    now: float | datetime,
    namespace_team: str | None = None,
) -> str:
    """Pretty `policy.json` text for `server`; reuses `existing_text` byte-for-byte when nothing changed.

    `now` (epoch seconds or an aware datetime) becomes `generated_at` only when the text is rewritten.

    Raises:
        PolicyError: the rendered document fails validation (the caller keeps the old policy).
    """
    doc = render_document(server, grants, sessions, cluster=cluster, namespace_team=namespace_team)
    validate(doc)
    if _unchanged(existing_text, doc.revision):
        assert existing_text is not None
        return existing_text.decode("utf-8") if isinstance(existing_text, bytes) else existing_text
    epoch = now.timestamp() if isinstance(now, datetime) else now
    return to_pretty_json(dataclasses.replace(doc, generated_at=format_rfc3339(epoch)))
