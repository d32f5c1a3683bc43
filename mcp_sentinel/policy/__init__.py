"""Policy model, canonical revision, validator, evaluator and renderer (stdlib only: the sidecar imports it).

Typical use:

    policy = load_policy(path.read_bytes())          # PolicyError when invalid (fail-closed)
    decision = policy.authorize(AuthzRequest(identity, "tools/call", "refund"), time.time())
    text = render_policy(server, grants, sessions, cluster="local", existing_text=old, now=time.time())
"""

from __future__ import annotations

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
from mcp_sentinel.policy.encode import canonical_bytes, compute_revision, to_compact_json, to_pretty_json
from mcp_sentinel.policy.errors import PolicyError
from mcp_sentinel.policy.evaluate import CompiledPolicy, load_policy
from mcp_sentinel.policy.render import render_document, render_policy
from mcp_sentinel.policy.types import TOOL_CALL_METHODS, AuthzRequest, Decision, Identity
from mcp_sentinel.policy.validate import validate

__all__ = [
    "SCHEMA_VERSION",
    "TOOL_CALL_METHODS",
    "AuthBlock",
    "AuthzRequest",
    "CompiledPolicy",
    "Decision",
    "Grant",
    "Identity",
    "PolicyBlock",
    "PolicyDocument",
    "PolicyError",
    "ServerInfo",
    "SessionBinding",
    "SessionBlock",
    "Prompt",
    "Resource",
    "Tool",
    "ToolRule",
    "canonical_bytes",
    "compute_revision",
    "load_policy",
    "parse_document",
    "render_document",
    "render_policy",
    "to_compact_json",
    "to_pretty_json",
    "validate",
]
