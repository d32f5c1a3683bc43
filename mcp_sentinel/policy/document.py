"""Typed model of the rendered gateway policy document (upstream §2.3).

Field declaration order is the canonical JSON key order (it feeds the revision digest), and
each field's metadata carries its JSON key and whether Go's `omitempty` applies. The decoder
(`decode.py`) and the encoder (`encode.py`) are driven by this metadata alone, so adding a
field here is the whole change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = "v1"


def _f(key: str, kind: Any = "str", *, omitempty: bool = True, default: Any = "") -> Any:
    """A dataclass field bound to JSON key `key`; `kind` tells the codec how to read it."""
    meta = {"json": key, "kind": kind, "omitempty": omitempty}
    if isinstance(default, (tuple, str, bool, int)) or default is None:
        return field(default=default, metadata=meta)
    return field(default_factory=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """`server`: which MCP server the document governs."""

    name: str = _f("name", omitempty=False)
    namespace: str = _f("namespace", omitempty=False)
    team_id: str = _f("team_id")
    cluster: str = _f("cluster")
    # Pinned tool definitions (issue 18; mcp_sentinel/policy/pins.py): tool name -> tool_digest. Pinning
    # is active once this is non-empty; `unpinnedTools` are the explicit opt-outs. Omitted when empty.
    tool_pins: Mapping[str, str] = _f("toolPins", "labels", default=dict)
    unpinned_tools: tuple[str, ...] = _f("unpinnedTools", "strs", default=())


@dataclass(frozen=True, slots=True)
class AuthBlock:
    """`auth`: how the gateway learns who is calling."""

    mode: str = _f("mode")
    human_id_header: str = _f("human_id_header")
    agent_id_header: str = _f("agent_id_header")
    team_id_header: str = _f("team_id_header")
    session_id_header: str = _f("session_id_header")
    token_header: str = _f("token_header")
    issuer_url: str = _f("issuer_url")
    audience: str = _f("audience")
    trust_domain: str = _f("trust_domain")
    # The server's canonical resource URL with its public path (`https://host/<server>/mcp`): the
    # audience OAuth and platform tokens must carry and the `resource` of its RFC 9728 metadata.
    resource: str = _f("resource")


@dataclass(frozen=True, slots=True)
class PolicyBlock:
    """`policy`: mode, default decision and the document's policy version."""

    mode: str = _f("mode")
    default_decision: str = _f("default_decision")
    enforce_on: str = _f("enforce_on")
    policy_version: str = _f("policy_version")


@dataclass(frozen=True, slots=True)
class SessionBlock:
    """`session`: whether calls need an agent session (only `required` and the token header act)."""

    required: bool = _f("required", "bool", default=False)
    store: str = _f("store")
    header_name: str = _f("header_name")
    max_lifetime: str = _f("max_lifetime")
    idle_timeout: str = _f("idle_timeout")
    upstream_token_header: str = _f("upstream_token_header")


@dataclass(frozen=True, slots=True)
class Tool:
    """One entry of the server's tool inventory."""

    name: str = _f("name", omitempty=False)
    description: str = _f("description")
    required_trust: str = _f("required_trust")
    side_effect: str = _f("side_effect")
    risk_level: str = _f("risk_level")
    labels: Mapping[str, str] = _f("labels", "labels", default=dict)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One entry of the server's prompt inventory; governed like a tool (`prompts/get`)."""

    name: str = _f("name", omitempty=False)
    description: str = _f("description")
    required_trust: str = _f("required_trust")
    side_effect: str = _f("side_effect")
    risk_level: str = _f("risk_level")
    labels: Mapping[str, str] = _f("labels", "labels", default=dict)


@dataclass(frozen=True, slots=True)
class Resource:
    """One entry of the server's resource inventory; `uri` is exact or an RFC 6570 template (`resources/read`)."""

    name: str = _f("name", omitempty=False)
    uri: str = _f("uri")
    description: str = _f("description")
    required_trust: str = _f("required_trust")
    side_effect: str = _f("side_effect")
    risk_level: str = _f("risk_level")
    labels: Mapping[str, str] = _f("labels", "labels", default=dict)


@dataclass(frozen=True, slots=True)
class ToolRule:
    """A grant's rule for one named tool."""

    name: str = _f("name", omitempty=False)
    decision: str = _f("decision")
    required_trust: str = _f("required_trust")


@dataclass(frozen=True, slots=True)
class Quota:
    """A grant's limit: at most `limit` tool calls per window, counted per session, agent or human.

    `tool` and `side_effect` narrow what is counted (both empty: every tool call the grant allows).
    JSON keys are camelCase as the shared issue-18 shape fixes them; `mcp_sentinel.policy.quotas` compiles them.
    """

    limit: int = _f("limit", "int", omitempty=False, default=0)
    window_seconds: int = _f("windowSeconds", "int", omitempty=False, default=0)
    per: str = _f("per", omitempty=False)
    tool: str = _f("tool")
    side_effect: str = _f("sideEffect")


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """A grant's `approval`: calls of these tools or side-effect classes wait for a human (issue 18)."""

    side_effects: tuple[str, ...] = _f("sideEffects", "strs", default=())
    tools: tuple[str, ...] = _f("tools", "strs", default=())
    ttl_seconds: int = _f("ttlSeconds", "int", default=0)


@dataclass(frozen=True, slots=True)
class Grant:
    """A rendered MCPAccessGrant: who may call which tools, up to which trust."""

    name: str = _f("name", omitempty=False)
    namespace: str = _f("namespace")
    human_id: str = _f("human_id")
    agent_id: str = _f("agent_id")
    team_id: str = _f("team_id")
    max_trust: str = _f("max_trust")
    allowed_side_effects: tuple[str, ...] = _f("allowed_side_effects", "strs", default=())
    policy_version: str = _f("policy_version")
    disabled: bool = _f("disabled", "bool", default=False)
    tool_rules: tuple[ToolRule, ...] = _f("tool_rules", ("list", ToolRule), default=())
    # Same shape as tool rules, naming prompts and resources (by inventory name); absent: all covered.
    prompt_rules: tuple[ToolRule, ...] = _f("prompt_rules", ("list", ToolRule), default=())
    resource_rules: tuple[ToolRule, ...] = _f("resource_rules", ("list", ToolRule), default=())
    # Appended and omitted when empty, so grants without quotas keep their revision digest.
    quotas: tuple[Quota, ...] = _f("quotas", ("list", Quota), default=())
    # Appended and omitted when absent, so grants without it keep their revision digest.
    approval: ApprovalRule | None = _f("approval", ("opt", ApprovalRule), default=None)


@dataclass(frozen=True, slots=True)
class SessionBinding:
    """A rendered MCPAgentSession; `name` is the session id clients send."""

    name: str = _f("name", omitempty=False)
    namespace: str = _f("namespace")
    human_id: str = _f("human_id")
    agent_id: str = _f("agent_id")
    team_id: str = _f("team_id")
    consented_trust: str = _f("consented_trust")
    revoked: bool = _f("revoked", "bool", default=False)
    expires_at: str = _f("expires_at")
    policy_version: str = _f("policy_version")
    upstream_token_ref: str = _f("upstream_token_ref")


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """The whole rendered policy (`policy.json`). Absent blocks are None; absent lists are empty."""

    schema_version: str = _f("schema_version", omitempty=False)
    revision: str = _f("revision", omitempty=False)
    generated_at: str = _f("generated_at")
    server: ServerInfo = _f("server", ("obj", ServerInfo), omitempty=False, default=ServerInfo)
    auth: AuthBlock | None = _f("auth", ("opt", AuthBlock), default=None)
    policy: PolicyBlock | None = _f("policy", ("opt", PolicyBlock), default=None)
    session: SessionBlock | None = _f("session", ("opt", SessionBlock), default=None)
    tools: tuple[Tool, ...] = _f("tools", ("list", Tool), default=())
    grants: tuple[Grant, ...] = _f("grants", ("list", Grant), default=())
    sessions: tuple[SessionBinding, ...] = _f("sessions", ("list", SessionBinding), default=())
    # Appended (and omitted when empty) so documents without them keep their revision digest.
    prompts: tuple[Prompt, ...] = _f("prompts", ("list", Prompt), default=())
    resources: tuple[Resource, ...] = _f("resources", ("list", Resource), default=())
