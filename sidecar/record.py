"""The end of every exchange: metrics for all of them, an audit event per decision for the audited ones.

Audit payloads follow the one schema in `mcp_sentinel.audit_payload` (what ingest validates and
storage materialises); they are encoded by `mcp_sentinel.cloudevents_line` and appended to the
spool before the handler returns, i.e. before aiohttp sends the response bytes: a client that saw
an answer can rely on its audit event being on disk.
"""

from __future__ import annotations

import time

from mcp_sentinel import jsonrpc
from mcp_sentinel.audit_payload import DECISION_FIELDS, AuditPayload
from mcp_sentinel.cloudevents_line import EventEncoder
from mcp_sentinel.policy.types import Decision
from sidecar.exchange import Exchange, Scope
from sidecar.state import SidecarState


class Recorder:
    """Counts and audits exchanges for one app."""

    def __init__(self, state: SidecarState) -> None:
        self.state = state
        s = state.settings
        self._encoder = EventEncoder(source=s.analytics_source, event_type=s.analytics_event_type)

    def finish(self, ex: Exchange, scope: Scope) -> None:
        """Observe the exchange's metrics and spool its audit events (when it is audited)."""
        state = self.state
        elapsed = time.perf_counter() - ex.started
        status = ex.status or 499
        rpc = ex.inspection.first_method if ex.inspection else ""
        denied = any(not d.allowed for _m, d in ex.decisions)
        decision = "deny" if denied else "allow"
        m = state.metrics
        m.observe_request(scope, ex.method, rpc, decision, status, elapsed, ex.bytes_in, ex.bytes_out)
        m.child(m.added_latency, "tools/call" if rpc == "tools/call" else "other").observe(
            max(0.0, elapsed - ex.upstream_wait)
        )
        for msg, d in ex.decisions:
            if msg.is_tool_call or not d.allowed:
                m.child(
                    m.decisions,
                    *scope,
                    d.decision,
                    d.reason or ("allowed" if d.allowed else "denied"),
                    msg.method or "none",
                ).inc()
        spool = state.spool
        if not ex.audit or spool is None:
            return
        latency_ms = int(elapsed * 1000)
        for msg, d in ex.decisions:
            if msg.kind == "response" and d.allowed:
                continue  # a client answering a server request decides nothing
            line = self._encoder.line(self.payload(ex, scope, msg, d, status, latency_ms), ex.traceparent)
            if spool.append_line(line) and state.sender is not None:  # one O_APPEND write
                state.sender.notify()

    def payload(
        self, ex: Exchange, scope: Scope, msg: jsonrpc.Message, d: Decision, status: int, latency_ms: int
    ) -> AuditPayload:
        """The audit payload of one message's decision."""
        ns, server, cluster, team = scope
        ident = ex.identity
        p: AuditPayload = {
            "method": ex.method,
            "path": ex.path,
            "status": status,
            "latency_ms": latency_ms,
            "bytes_in": ex.bytes_in,
            "bytes_out": ex.bytes_out,
            "server": server,
            "namespace": ns,
            "team_id": team,
            "cluster": cluster,
            "human_id": ident.human_id,
            "agent_id": ident.agent_id,
            "subject_team_id": ident.team_id,
            "session_id": ident.session_id,
            "decision": d.decision,
            "reason": d.reason or ("allowed" if d.allowed else "undecided"),
            "policy_version": d.policy_version or self.state.settings.policy_version,
        }
        if msg.method:
            p["rpc_method"] = msg.method
        if msg.tool_name:
            p["tool_name"] = msg.tool_name
        elif msg.target:
            if msg.method == "prompts/get":
                p["prompt_name"] = msg.target
            else:
                p["resource_uri"] = msg.target
        if msg.id is not None:
            p["rpc_id"] = msg.id
        for key in DECISION_FIELDS:  # all optional strings of the schema
            val = getattr(d, key)
            if val:
                p[key] = val
        if ex.traceparent:
            p["trace_id"] = ex.traceparent.split("-")[1] if ex.traceparent.count("-") >= 3 else ""
        return p
