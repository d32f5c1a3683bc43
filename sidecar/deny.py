"""Every answer the gateway writes itself instead of the upstream's: denials, refusals, 502s.

Each builder records the outcome on the `Exchange` (decisions, status, bytes out) so the denied
request is counted and audited exactly like a forwarded one; bodies are JSON-RPC error bodies
(upstream §11.13) with the reason string in `error.data.reason`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.types import Decision
from sidecar.errors import AuthFailure, Refusal
from sidecar.exchange import Exchange, auth_mode, doc_version, header_names
from sidecar.mtls import MTLS_REASONS
from sidecar.quota import RETRY_AFTER
from sidecar.resource import OAUTH_METADATA, metadata_url
from sidecar.settings import SidecarSettings

log = logging.getLogger("sidecar")


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    """An already-encoded JSON body."""
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def plain_json(status: int, body: dict[str, Any]) -> web.Response:
    """A JSON object that is not JSON-RPC (local endpoints)."""
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


def mtls_extra(policy: CompiledPolicy | None, reason: str) -> dict[str, Any]:
    """What an mTLS-mode identity denial adds to the error data (upstream §4.6)."""
    if reason in MTLS_REASONS and auth_mode(policy) == "mtls":
        return {"client_certificate_required": True}
    return {}


def _adapter_hint(settings: SidecarSettings, policy: CompiledPolicy | None) -> dict[str, Any]:
    return {"adapter_required": True, "required_headers": list(header_names(settings, policy))}


def deny_plain(
    settings: SidecarSettings, ex: Exchange, status: int, code: int, message: str, reason: str, msg_id: Any = None
) -> web.Response:
    """A refusal before any policy decision (inspection, size, encoding, headers)."""
    d = Decision(allowed=False, status=status, reason=reason, policy_version=doc_version(settings, ex.policy))
    first = ex.inspection.first_method if ex.inspection else ""
    ex.decisions = [(jsonrpc.Message(kind="request", id=msg_id, method=first), d)]
    ex.status = status
    body = jsonrpc.error_body(msg_id, code, message, reason)
    ex.bytes_out = len(body)
    return json_response(status, body)


def refuse(settings: SidecarSettings, ex: Exchange, refusal: Refusal, msg_id: Any = None) -> web.Response:
    """`deny_plain` for a `Refusal` value."""
    return deny_plain(settings, ex, refusal.status, refusal.code, refusal.message, refusal.reason, msg_id)


def deny_auth(settings: SidecarSettings, path: str, ex: Exchange, fail: AuthFailure) -> web.Response:
    """An identity failure; 401s in token modes carry the RFC 6750/9728 challenge."""
    d = Decision(allowed=False, status=fail.status, reason=fail.reason, policy_version=doc_version(settings, ex.policy))
    insp = ex.inspection
    msgs = [m for m in insp.messages if m.method] if insp else []
    ex.decisions = [(m, d) for m in msgs] or [(jsonrpc.Message(kind="request"), d)]
    ex.audit = ex.audit or bool(msgs)
    headers: dict[str, str] = {}
    auth = ex.policy.doc.auth if ex.policy is not None else None
    if fail.status == 401 and auth is not None and auth_mode(ex.policy) in ("oauth", "platform"):
        meta = metadata_url(auth.resource, settings.external_base_url, path, OAUTH_METADATA)
        challenge = 'Bearer realm="mcp-sentinel"'
        if meta:
            challenge += f', resource_metadata="{meta}"'
        if fail.reason != "missing_bearer_token":
            challenge += ', error="invalid_token"'
        headers["WWW-Authenticate"] = challenge
    msg_id = msgs[0].id if len(msgs) == 1 else None
    extra = mtls_extra(ex.policy, fail.reason)
    body = jsonrpc.error_body(msg_id, jsonrpc.code_for_status(fail.status), fail.detail, fail.reason, **extra)
    ex.status = fail.status
    ex.bytes_out = len(body)
    return json_response(fail.status, body, headers)


def deny_rpc(
    settings: SidecarSettings,
    ex: Exchange,
    insp: jsonrpc.Inspection,
    denied: list[tuple[jsonrpc.Message, Decision]],
) -> web.Response:
    """Deny a message or a whole batch: if any call in a batch is denied, none is forwarded."""
    first = denied[0][1]
    status = first.status or 403
    denied_ids = {id(m): d for m, d in denied}
    if first.reason in ("missing_identity", "missing_session") and auth_mode(ex.policy) not in (
        "oauth", "mtls", "platform"
    ):  # fmt: skip
        extra = _adapter_hint(settings, ex.policy)
    else:
        extra = mtls_extra(ex.policy, first.reason)

    def err(m: jsonrpc.Message, d: Decision | None) -> dict[str, Any]:
        if d is None:
            return jsonrpc.error_object(
                m.id, jsonrpc.FORBIDDEN, "batch rejected: another call in it was denied", "batch_rejected"
            )
        code = jsonrpc.code_for_status(d.status)
        retry = d.extra.get(RETRY_AFTER)
        if retry is not None:  # quota_exceeded: when the client may try again (also the Retry-After header)
            return jsonrpc.error_object(m.id, code, f"tool call denied: {d.reason}", d.reason, tool=m.tool_name,
                                        **{RETRY_AFTER: int(retry)})  # fmt: skip
        if not m.is_tool_call:
            return jsonrpc.error_object(m.id, code, f"{m.method} denied: {d.reason}", d.reason, **extra)
        # `d.extra`: what the caller needs to act on the denial (an approval's id and link).
        return jsonrpc.error_object(m.id, code, f"tool call denied: {d.reason}", d.reason, tool=m.tool_name, **extra,
                                    **d.extra)  # fmt: skip

    if insp.batch:
        out = [err(m, denied_ids.get(id(m))) for m in insp.messages if m.has_id]
        # Record the batch outcome on every message for audit: allowed ones were not forwarded either.
        ex.decisions = [
            (
                m,
                denied_ids.get(id(m))
                or Decision(allowed=False, status=status, reason="batch_rejected", policy_version=d.policy_version),
            )
            for m, d in ex.decisions
        ]
        body = json.dumps(out, separators=(",", ":")).encode()
    else:
        m, d = denied[0]
        body = json.dumps(err(m, d), separators=(",", ":")).encode()
    ex.status = status
    ex.bytes_out = len(body)
    waits = [int(d.extra[RETRY_AFTER]) for _m, d in denied if RETRY_AFTER in d.extra]
    return json_response(status, body, {"Retry-After": str(max(waits))} if waits else None)


def deny_stream(settings: SidecarSettings, ex: Exchange, d: Decision) -> web.Response:
    """Deny a bodyless request (GET stream, DELETE, HEAD)."""
    extra: dict[str, Any] = {}
    if d.reason == "missing_identity" and auth_mode(ex.policy) not in ("oauth", "mtls"):
        extra = _adapter_hint(settings, ex.policy)
    body = jsonrpc.error_body(None, jsonrpc.code_for_status(d.status), f"request denied: {d.reason}", d.reason,
                              **extra)  # fmt: skip
    ex.status = d.status
    ex.bytes_out = len(body)
    return json_response(d.status, body)


def _bad_gateway(ex: Exchange, message: str, reason: str) -> web.Response:
    """A 502 in place of the upstream's answer; the decisions stay allowed (the policy let them through)."""
    for i, (m, _d) in enumerate(ex.decisions):
        ex.decisions[i] = (m, Decision(allowed=True, status=502, reason=reason))
    body = jsonrpc.error_body(ex.single_id(), jsonrpc.UPSTREAM_ERROR, message, reason)
    ex.status = 502
    ex.bytes_out = len(body)
    return json_response(502, body)


def unreachable(ex: Exchange, what: str, exc: BaseException) -> web.Response:
    """The upstream could not be reached or broke off before its answer was read."""
    log.warning("upstream %s: %s", what, exc)
    return _bad_gateway(ex, "upstream MCP server unreachable", "upstream_unavailable")


def unfilterable(ex: Exchange, why: str) -> web.Response:
    """A filtered answer the gateway cannot read: a JSON-RPC error, never the upstream's bytes."""
    log.warning("upstream answer not filterable: %s", why)
    return _bad_gateway(ex, f"answer could not be filtered: {why}", "upstream_answer_unfilterable")
