"""One proxied exchange: the facts gathered along the pipeline, and what the policy snapshot says.

`Exchange` carries the request's facts to the response builders (`sidecar.deny`,
`sidecar.forward`) and to metrics and audit (`sidecar.record`). The helpers below read the
exchange's immutable `CompiledPolicy` snapshot (None before the first valid policy), falling
back to the process settings, so every step of one request sees the same configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.types import Decision, Identity
from sidecar.settings import SidecarSettings

Scope = tuple[str, str, str, str]
"""(namespace, server, cluster, owning team) of the governed server: the metrics labels and audit fields."""


@dataclass(slots=True)
class Exchange:
    """Per-request facts gathered along the pipeline, for the response, metrics and audit."""

    method: str
    path: str
    started: float
    policy: CompiledPolicy | None = None
    bytes_in: int = 0
    inspection: jsonrpc.Inspection | None = None
    identity: Identity = field(default_factory=Identity)
    decisions: list[tuple[jsonrpc.Message, Decision]] = field(default_factory=list)
    status: int = 0
    bytes_out: int = 0
    audit: bool = False
    upstream_wait: float = 0.0
    traceparent: str = ""
    decoded: bool = False  # the body's Content-Encoding was undone: forward the decoded bytes without it
    unfiltered: bool = False  # the inventory path: the upstream's own listings, never filtered per caller

    def single_id(self) -> Any:
        """The JSON-RPC id to answer with: the one message's id, None for a batch or no body."""
        insp = self.inspection
        return insp.messages[0].id if insp is not None and len(insp.messages) == 1 else None


def scope(settings: SidecarSettings, policy: CompiledPolicy | None) -> Scope:
    """The governed server's labels: the policy's `server` block, else the settings."""
    s = settings
    if policy is None:
        return (s.server_namespace, s.server_name, s.cluster_name, "")
    srv = policy.doc.server
    return (srv.namespace or s.server_namespace, srv.name or s.server_name, srv.cluster or s.cluster_name, srv.team_id)


def header_names(settings: SidecarSettings, policy: CompiledPolicy | None) -> tuple[str, str, str, str]:
    """The (human, agent, team, session) identity header names in force."""
    s = settings
    auth = policy.doc.auth if policy is not None else None
    if auth is None:
        return (s.human_id_header, s.agent_id_header, s.team_id_header, s.session_id_header)
    return (
        auth.human_id_header or s.human_id_header,
        auth.agent_id_header or s.agent_id_header,
        auth.team_id_header or s.team_id_header,
        auth.session_id_header or s.session_id_header,
    )


def auth_mode(policy: CompiledPolicy | None) -> str:
    """`header` (the default), `oauth`, `platform` or `mtls`."""
    auth = policy.doc.auth if policy is not None else None
    return (auth.mode.strip().lower() if auth is not None and auth.mode else "header") or "header"


def doc_version(settings: SidecarSettings, policy: CompiledPolicy | None) -> str:
    """The policy version to record: the document's, else the configured one."""
    blk = policy.doc.policy if policy is not None else None
    return (blk.policy_version if blk is not None else "") or settings.policy_version


def child_traceparent(inbound: str) -> str:
    """A traceparent for our hop: same trace id and flags as `inbound` (if valid), fresh span id."""
    parts = inbound.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16 and parts[1] != "0" * 32:
        try:
            int(parts[1], 16)
            int(parts[2], 16)
            return f"00-{parts[1]}-{os.urandom(8).hex()}-{parts[3][:2]}"
        except ValueError:
            pass
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
