"""The enforcement sidecar: inspect -> authenticate -> authorize -> forward -> audit (upstream §4.3).

`create_app(settings)` returns the proxy `web.Application`; `create_metrics_app(state)` the
separate metrics listener. Everything that is not a `tools/call` is forwarded unchanged and
streamed without buffering; denials are JSON-RPC error bodies (§11.13).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy.types import PUBLIC_METHODS, AuthzRequest, Decision, Identity
from sidecar import inspect as gate
from sidecar.audit import AuditSender, AuditSpool, EventEncoder, sync_loop
from sidecar.encoding import EncodingError, codings, decode_body, decode_stream
from sidecar.metrics import SidecarMetrics
from sidecar.mtls import MTLS_REASONS, mtls_identity, policy_refusal
from sidecar.oauth import AuthFailure, OAuthVerifier, bearer_from, claims_identity, preload
from sidecar.origin import OriginGuard
from sidecar.platform_token import PlatformVerifier, session_identity
from sidecar.policy_store import PolicyStore
from sidecar.refusals import install as install_refusals
from sidecar.resource import metadata_url, resource_url
from sidecar.settings import SidecarSettings
from sidecar.streams import Unfilterable, filter_json_body, filter_sse_event, iter_sse_events
from sidecar.upstream import UpstreamError, UpstreamPool, header_block

log = logging.getLogger("sidecar")

# The API's live-inventory path lives on its own listener (sidecar/inventory.py); the public port
# answers 404 for it. Upstream instead skipped auditing any request whose agent id was
# "mcp-runtime-live-inventory" (§4.8), which in header mode anyone can claim.
_INVENTORY = "/.sentinel/inventory"
INVENTORY_TOKEN_HEADER = "X-Sentinel-Inventory-Token"
RESERVED_PREFIX = "/.sentinel"
# Hop-by-hop headers (RFC 9110 §7.6.1) and headers the proxy recomputes.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_RESP_DROP = frozenset({*_HOP, "content-encoding-override"})
_RESP_DROP_DECODED = frozenset({*_RESP_DROP, "content-encoding"})  # a filtered answer is sent decoded
# Request headers the sidecar sets itself; a client's copies are dropped, never forwarded alongside ours.
# `authorization`: the client's credential never reaches the upstream (MCP SEC; §11.16).
_OWN = frozenset(
    {"authorization", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "traceparent",
     INVENTORY_TOKEN_HEADER.lower()}
)
_OAUTH_METADATA = "/.well-known/oauth-protected-resource"
# Bound on a decoded filtered answer (a compressed upstream answer must not expand without limit).
_MAX_STREAM = 256 * 1024 * 1024
_STATE: web.AppKey[SidecarState] = web.AppKey("sidecar_state")


@dataclass
class SidecarState:
    """Everything one sidecar process shares across requests (built by `create_app`)."""

    settings: SidecarSettings
    store: PolicyStore
    metrics: SidecarMetrics
    spool: AuditSpool | None = None
    sender: AuditSender | None = None
    session: aiohttp.ClientSession | None = None
    oauth: OAuthVerifier | None = None
    platform: PlatformVerifier | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tracer: trace.Tracer | None = None
    propagator: TraceContextTextMapPropagator = field(default_factory=TraceContextTextMapPropagator)
    upstream_host: str = ""
    upstream_base_path: str = ""
    pool: UpstreamPool | None = None


class _Answer(Protocol):
    """What `_relay` needs from an upstream response (the pooled client's or aiohttp's)."""

    status: int
    content_length: int | None
    content_type: str

    @property
    def headers(self) -> list[tuple[str, str]]: ...

    async def read(self) -> bytes: ...

    def iter_any(self) -> AsyncIterator[bytes]: ...

    def release(self) -> None: ...


class _AiohttpAnswer:
    """aiohttp's `ClientResponse` seen through `_Answer` (HEAD, streamed request bodies, https)."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.content_length = resp.content_length
        self.content_type = resp.headers.get("Content-Type", "").lower()

    @property
    def headers(self) -> list[tuple[str, str]]:
        return list(self._resp.headers.items())

    async def read(self) -> bytes:
        return await self._resp.read()

    async def iter_any(self) -> AsyncIterator[bytes]:
        async for chunk in self._resp.content.iter_any():
            yield chunk

    def release(self) -> None:
        self._resp.release()


@dataclass(slots=True)
class Exchange:
    """Per-request facts gathered along the pipeline, for the response, metrics and audit."""

    method: str
    path: str
    started: float
    bytes_in: int = 0
    inspection: jsonrpc.Inspection | None = None
    identity: Identity = field(default_factory=Identity)
    decisions: list[tuple[jsonrpc.Message, Decision]] = field(default_factory=list)
    status: int = 0
    bytes_out: int = 0
    audit: bool = False
    upstream_wait: float = 0.0
    traceparent: str = ""
    policy: Any = None
    decoded: bool = False  # the body's Content-Encoding was undone: forward the decoded bytes without it
    unfiltered: bool = False  # the inventory path: the upstream's own listings, never filtered per caller


def _scope(state: SidecarState, policy: Any) -> tuple[str, str, str, str]:
    s = state.settings
    if policy is None:
        return (s.server_namespace, s.server_name, s.cluster_name, "")
    srv = policy.doc.server
    return (srv.namespace or s.server_namespace, srv.name or s.server_name, srv.cluster or s.cluster_name, srv.team_id)


def _header_names(state: SidecarState, policy: Any) -> tuple[str, str, str, str]:
    s = state.settings
    auth = policy.doc.auth if policy is not None else None
    if auth is None:
        return (s.human_id_header, s.agent_id_header, s.team_id_header, s.session_id_header)
    return (
        auth.human_id_header or s.human_id_header,
        auth.agent_id_header or s.agent_id_header,
        auth.team_id_header or s.team_id_header,
        auth.session_id_header or s.session_id_header,
    )


def _auth_mode(policy: Any) -> str:
    auth = policy.doc.auth if policy is not None else None
    return (auth.mode.strip().lower() if auth is not None and auth.mode else "header") or "header"


def _plain_json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json")


def _mtls_extra(policy: Any, reason: str) -> dict[str, Any]:
    """What an mTLS-mode identity denial adds to the error data (upstream §4.6)."""
    if reason in MTLS_REASONS and _auth_mode(policy) == "mtls":
        return {"client_certificate_required": True}
    return {}


def _child_traceparent(inbound: str) -> str:
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


def _json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class Sidecar:
    """The request handlers; one instance per app."""

    def __init__(self, state: SidecarState) -> None:
        self.state = state
        self._drop_cache: tuple[Any, tuple[str, str, str, str], frozenset[str]] | None = None
        self._encoder = EventEncoder(
            source=state.settings.analytics_source, event_type=state.settings.analytics_event_type
        )
        s = state.settings
        self._origin = OriginGuard(s.allowed_hosts, s.allowed_origins, s.external_base_url)

    # -- local endpoints -------------------------------------------------------------------------

    async def health(self, _request: web.Request) -> web.Response:
        """Liveness: the process serves requests."""
        return web.Response(text="ok")

    async def ready(self, _request: web.Request) -> web.Response:
        """Readiness: a valid policy is active (stays ready after later failed reloads)."""
        st = self.state.store.status()
        if st.ready:
            return web.Response(text="ready")
        body: dict[str, Any] = {"status": "not_ready", "reason": "policy_not_loaded"}
        if st.last_reload_error:
            body["last_reload_error"] = st.last_reload_error
        return web.json_response(body, status=503)

    async def config_status(self, _request: web.Request) -> web.Response:
        """Policy status without grants, sessions, tools or server details."""
        st = self.state.store.status()
        body: dict[str, Any] = {"ready": st.ready, "reload_failures": st.reload_failures}
        if st.ready:
            body["schema_version"] = st.schema_version
            body["revision"] = st.revision
            body["loaded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.loaded_at))
        if st.last_reload_error:
            body["last_reload_error"] = st.last_reload_error
        spool = self.state.spool
        if spool is not None:
            c = spool.counters
            body["audit"] = {
                "spool_depth": c.depth,
                "sent": c.sent,
                "dropped": c.dropped_full + c.dropped_corrupt,
                "quarantined": c.quarantined,
                "last_error": self.state.sender.last_error if self.state.sender else "",
            }
        return web.json_response(body)

    async def oauth_metadata(self, request: web.Request, policy: Any) -> web.StreamResponse:
        """RFC 9728 protected-resource metadata (§3.12); never forwarded, never audited."""
        head = request.method == "HEAD"
        mode = _auth_mode(policy)
        if mode not in ("oauth", "platform"):
            body = {
                "error": "oauth_not_enabled",
                "message": "This MCP server uses identity headers, not OAuth; connect through the sentinel adapter.",
                "adapter_required": True,
            }
            return web.Response(
                status=404, body=b"" if head else json.dumps(body).encode(), content_type="application/json"
            )
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405)
        suffix = request.path[len(_OAUTH_METADATA) :] or "/"
        resource = resource_url(policy.doc.auth.resource, self.state.settings.external_base_url, suffix)
        if not resource:
            return _plain_json(503, {"error": "resource_url_unconfigured"})
        meta: dict[str, Any] = {"resource": resource, "bearer_methods_supported": ["header"]}
        if mode == "oauth":
            meta["authorization_servers"] = [policy.doc.auth.issuer_url]
        return web.Response(
            status=200, body=b"" if head else json.dumps(meta).encode(), content_type="application/json"
        )

    # -- the pipeline --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every proxied request."""
        state = self.state
        policy = state.store.current  # one immutable snapshot for the whole exchange
        path = request.path
        if path == _INVENTORY or path.startswith(_INVENTORY + "/"):
            # Only on the inventory listener (sidecar/inventory.py); never reachable through the public port.
            return _plain_json(404, {"error": "not_found"})
        refusal = self._origin_refusal(request)
        if refusal is None and (path == _OAUTH_METADATA or path.startswith(_OAUTH_METADATA + "/")):
            return await self.oauth_metadata(request, policy)
        ex = Exchange(method=request.method, path=path, started=time.perf_counter(), policy=policy)
        scope = _scope(state, policy)
        inflight = state.metrics.child(state.metrics.inflight, *scope)
        inflight.inc()
        resp: web.StreamResponse
        try:
            if refusal is not None:
                ex.audit = True
                resp = self._refuse(ex, refusal)
            else:
                resp = await self._pipeline(request, ex)
        finally:
            inflight.dec()
            self._finish(ex, scope)
        return resp

    def _origin_refusal(self, request: web.Request) -> gate.Refusal | None:
        """403 for a `Host` or `Origin` that does not name this gateway (DNS rebinding; MCP transport)."""
        h = request.headers
        if not self._origin.host_allowed(h.getall("Host", [])):
            return gate.Refusal(403, jsonrpc.FORBIDDEN, "Host is not one this gateway serves", "host_not_allowed")
        if not self._origin.origin_allowed(h.getall("Origin", [])):
            return gate.Refusal(403, jsonrpc.FORBIDDEN, "Origin is not allowed", "origin_not_allowed")
        return None

    def _refuse(self, ex: Exchange, refusal: gate.Refusal, msg_id: Any = None) -> web.Response:
        return self._deny_plain(ex, refusal.status, refusal.code, refusal.message, refusal.reason, msg_id)

    async def _pipeline(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        state = self.state
        policy = ex.policy
        body: bytes | None = None
        insp: jsonrpc.Inspection | None = None
        tp_in = request.headers.get("traceparent", "")
        ex.traceparent = self._traceparent(tp_in)

        # 1. inspect every body, whatever the verb (sidecar/inspect.py has the rules)
        if gate.must_inspect(request):
            ex.audit = True  # refusals included
            ctype = request.headers.get("Content-Type", "")
            if ctype and "json" not in ctype.lower():
                return self._deny_plain(
                    ex, 415, jsonrpc.INVALID_REQUEST, "POST bodies must be application/json", "rpc_inspection_failed"
                )
            declared = request.content_length
            if declared is not None and declared > state.settings.max_body_bytes:
                return self._deny_plain(
                    ex,
                    413,
                    jsonrpc.BODY_TOO_LARGE,
                    f"request body exceeds {state.settings.max_body_bytes} bytes",
                    "body_too_large",
                )
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return self._deny_plain(
                    ex,
                    413,
                    jsonrpc.BODY_TOO_LARGE,
                    f"request body exceeds {state.settings.max_body_bytes} bytes",
                    "body_too_large",
                )
            ex.bytes_in = len(body)
            decoded = gate.decode_request_body(request, body, state.settings.max_body_bytes)
            if isinstance(decoded, gate.Refusal):
                return self._refuse(ex, decoded)
            ex.decoded = decoded is not body
            body = decoded
            insp = jsonrpc.inspect_body(body)
            ex.inspection = insp
            if not insp.ok:
                return self._deny_plain(ex, 400, insp.error_code, insp.error, "rpc_inspection_failed", insp.error_id)
            if request.method not in gate.BODY_VERBS:
                return self._refuse(ex, gate.body_not_allowed(request.method))
            mismatch = jsonrpc.header_mismatch(insp, request.headers.get("Mcp-Method"), request.headers.get("Mcp-Name"))
            if mismatch:
                return self._deny_plain(
                    ex,
                    400,
                    jsonrpc.HEADER_MISMATCH,
                    mismatch,
                    "header_mismatch",
                    insp.messages[0].id if len(insp.messages) == 1 else None,
                )

        # 2-3. authenticate
        mode = _auth_mode(policy)
        token = ""
        if mode == "oauth":
            try:
                ex.identity, token = await self._oauth_identity(request, policy)
            except AuthFailure as fail:
                return self._deny_auth(request, ex, fail)
        elif mode == "platform":
            try:
                ex.identity = await self._platform_identity(request, policy)
            except AuthFailure as fail:
                return self._deny_auth(request, ex, fail)
        elif mode == "mtls":
            # Identity from the ingress-verified SPIFFE ID only; client governance headers are not read.
            transport = request.transport
            try:
                ex.identity = mtls_identity(
                    transport.get_extra_info("peercert") if transport is not None else None,
                    request.headers.getall(state.settings.verified_spiffe_header, ()),
                    policy,
                    state.settings.trusted_proxy_spiffe_id,
                    time.time(),
                )
            except AuthFailure as fail:
                return self._deny_auth(request, ex, fail)
        else:
            h = request.headers
            names = _header_names(state, policy)
            # A repeated identity header is ambiguous (which one did the trusted adapter set?): refuse it.
            repeated = [n for n in names if len(h.getall(n, ())) > 1]
            if repeated:
                return self._deny_plain(
                    ex,
                    400,
                    jsonrpc.INVALID_REQUEST,
                    f"identity header {repeated[0]} sent more than once",
                    "ambiguous_identity",
                    insp.messages[0].id if insp is not None and len(insp.messages) == 1 else None,
                )
            ex.identity = Identity(
                human_id=h.get(names[0], "").strip(),
                agent_id=h.get(names[1], "").strip(),
                team_id=h.get(names[2], "").strip(),
                session_id=h.get(names[3], "").strip(),
            )

        # 4. authorize (the body is the only source of truth): every method, not only tools/call
        if insp is not None:
            now = time.time()
            denied: list[tuple[jsonrpc.Message, Decision]] = []
            for msg in insp.messages:
                if not msg.method:
                    continue  # a client's JSON-RPC response to a server request: allowed (§11.12)
                d = self._decide(ex, msg.method, msg.target, now)
                if not d.allowed:
                    denied.append((msg, d))
                ex.decisions.append((msg, d))
            if denied:
                return self._deny_rpc(request, ex, insp, denied)
        elif request.method != "OPTIONS":
            # A bodyless stream (GET, resumed by Last-Event-ID), DELETE or HEAD: it carries answers and
            # server messages to the caller, so it needs an identity like any method (CORS preflight aside).
            ex.audit = True
            d = self._decide(ex, "", "", time.time())
            ex.decisions.append((jsonrpc.Message(kind="stream"), d))
            if not d.allowed:
                return self._deny_stream(ex, d)

        # 5. forward
        return await self._forward(request, ex, body, token)

    def _decide(self, ex: Exchange, method: str, target: str, now: float) -> Decision:
        policy = ex.policy
        if policy is not None:
            d: Decision = policy.authorize(AuthzRequest(ex.identity, method, target), now)
            return d
        if method in PUBLIC_METHODS or method.startswith("notifications/"):
            return Decision(policy_version=self._doc_version(policy))
        # No policy, so not even observe mode is known: only the handshake passes.
        return Decision(allowed=False, status=503, reason="policy_unavailable")

    def _deny_stream(self, ex: Exchange, d: Decision) -> web.Response:
        extra: dict[str, Any] = {}
        if d.reason == "missing_identity" and _auth_mode(ex.policy) not in ("oauth", "mtls"):
            extra = {"adapter_required": True, "required_headers": list(_header_names(self.state, ex.policy))}
        body = jsonrpc.error_body(None, jsonrpc.code_for_status(d.status), f"request denied: {d.reason}", d.reason,
                                  **extra)
        ex.status = d.status
        ex.bytes_out = len(body)
        return _json_response(d.status, body)

    def _doc_version(self, policy: Any) -> str:
        blk = policy.doc.policy if policy is not None else None
        return (blk.policy_version if blk is not None else "") or self.state.settings.policy_version

    def _traceparent(self, inbound: str) -> str:
        tracer = self.state.tracer
        if tracer is None or not self.state.settings.otel_endpoint:
            # No exporter: spans would go nowhere, so only continue (or start) the W3C trace cheaply.
            return _child_traceparent(inbound)
        ctx = self.state.propagator.extract({"traceparent": inbound} if inbound else {})
        span = tracer.start_span("http.server", context=ctx, kind=trace.SpanKind.SERVER)
        carrier: dict[str, str] = {}
        self.state.propagator.inject(carrier, context=trace.set_span_in_context(span))
        span.end()
        return carrier.get("traceparent", inbound)

    async def _oauth_identity(self, request: web.Request, policy: Any) -> tuple[Identity, str]:
        auth = policy.doc.auth
        if not auth.issuer_url:
            raise AuthFailure("oauth_issuer_missing", 503)
        if self.state.oauth is None:
            raise AuthFailure("oauth_config_missing", 503)
        header = auth.token_header or "Authorization"
        token = bearer_from(header, request.headers.get(header))
        if not token:
            raise AuthFailure("missing_bearer_token", 401)
        # Audience binding: the configured audience, else this server's canonical resource URL (MCP SEC),
        # from the policy or EXTERNAL_BASE_URL and never from the request's Host.
        audience = auth.audience or self._resource(request, policy)
        claims = await self.state.oauth.verify(token, issuer=auth.issuer_url, audience=audience)
        human, agent, team, sid = claims_identity(claims)
        names = _header_names(self.state, policy)
        session = sid or request.headers.get(names[3], "").strip()
        return Identity(human_id=human, agent_id=agent, team_id=team, session_id=session), token

    def _resource(self, request: web.Request, policy: Any) -> str:
        """This server's canonical resource URL for `request`, or 503 when none is configured."""
        url = resource_url(policy.doc.auth.resource, self.state.settings.external_base_url, request.path)
        if not url:
            raise AuthFailure(
                "resource_url_unconfigured", 503,
                "this server has no canonical URL (auth.resource or EXTERNAL_BASE_URL); tokens cannot be checked",
            )  # fmt: skip
        return url

    async def _platform_identity(self, request: web.Request, policy: Any) -> Identity:
        verifier = self.state.platform
        if verifier is None:
            raise AuthFailure("platform_config_missing", 503, "PLATFORM_TOKEN_ISSUER is not set on this gateway")
        resource = self._resource(request, policy)
        token = bearer_from("Authorization", request.headers.get("Authorization"))
        if not token:
            raise AuthFailure("missing_bearer_token", 401)
        claims = await verifier.verify(token, audience=resource)
        return session_identity(claims, policy, time.time())

    # -- denials ---------------------------------------------------------------------------------

    def _deny_plain(
        self, ex: Exchange, status: int, code: int, message: str, reason: str, msg_id: Any = None
    ) -> web.Response:
        d = Decision(allowed=False, status=status, reason=reason, policy_version=self._doc_version(ex.policy))
        ex.decisions = [
            (
                jsonrpc.Message(
                    kind="request", id=msg_id, method=(ex.inspection.first_method if ex.inspection else "")
                ),
                d,
            )
        ]
        ex.status = status
        body = jsonrpc.error_body(msg_id, code, message, reason)
        ex.bytes_out = len(body)
        return _json_response(status, body)

    def _deny_auth(self, request: web.Request, ex: Exchange, fail: AuthFailure) -> web.Response:
        d = Decision(allowed=False, status=fail.status, reason=fail.reason, policy_version=self._doc_version(ex.policy))
        insp = ex.inspection
        msgs = [m for m in insp.messages if m.method] if insp else []
        ex.decisions = [(m, d) for m in msgs] or [(jsonrpc.Message(kind="request"), d)]
        ex.audit = ex.audit or bool(msgs)
        headers: dict[str, str] = {}
        if fail.status == 401 and _auth_mode(ex.policy) in ("oauth", "platform"):
            auth = ex.policy.doc.auth
            meta = metadata_url(auth.resource, self.state.settings.external_base_url, request.path, _OAUTH_METADATA)
            challenge = 'Bearer realm="mcp-sentinel"'
            if meta:
                challenge += f', resource_metadata="{meta}"'
            if fail.reason != "missing_bearer_token":
                challenge += ', error="invalid_token"'
            headers["WWW-Authenticate"] = challenge
        msg_id = msgs[0].id if len(msgs) == 1 else None
        extra = _mtls_extra(ex.policy, fail.reason)
        body = jsonrpc.error_body(msg_id, jsonrpc.code_for_status(fail.status), fail.detail, fail.reason, **extra)
        ex.status = fail.status
        ex.bytes_out = len(body)
        return _json_response(fail.status, body, headers)

    def _deny_rpc(
        self,
        _request: web.Request,
        ex: Exchange,
        insp: jsonrpc.Inspection,
        denied: list[tuple[jsonrpc.Message, Decision]],
    ) -> web.Response:
        """Deny a message or a whole batch: if any call in a batch is denied, none is forwarded."""
        first = denied[0][1]
        status = first.status or 403
        denied_ids = {id(m): d for m, d in denied}
        extra: dict[str, Any] = {}
        mode = _auth_mode(ex.policy)
        if first.reason in ("missing_identity", "missing_session") and mode not in ("oauth", "mtls", "platform"):
            extra = {"adapter_required": True, "required_headers": list(_header_names(self.state, ex.policy))}
        else:
            extra = _mtls_extra(ex.policy, first.reason)

        def err(m: jsonrpc.Message, d: Decision | None) -> dict[str, Any]:
            if d is None:
                return jsonrpc.error_object(
                    m.id, jsonrpc.FORBIDDEN, "batch rejected: another call in it was denied", "batch_rejected"
                )
            if not m.is_tool_call:
                return jsonrpc.error_object(
                    m.id, jsonrpc.code_for_status(d.status), f"{m.method} denied: {d.reason}", d.reason, **extra
                )
            return jsonrpc.error_object(
                m.id,
                jsonrpc.code_for_status(d.status),
                f"tool call denied: {d.reason}",
                d.reason,
                tool=m.tool_name,
                **extra,
            )

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
        return _json_response(status, body)

    # -- forwarding ------------------------------------------------------------------------------

    def _drop_set(self, policy: Any) -> tuple[tuple[str, str, str, str], frozenset[str]]:
        """Identity header names and the request headers never forwarded, computed once per policy snapshot."""
        cached = self._drop_cache
        if cached is not None and cached[0] is policy:
            return cached[1], cached[2]
        names = _header_names(self.state, policy)
        drop = {*_HOP, *_OWN, *(n.lower() for n in names)}
        auth = policy.doc.auth if policy is not None else None
        if auth is not None and auth.token_header:
            drop.add(auth.token_header.lower())
        sess = policy.doc.session if policy is not None else None
        if sess is not None and sess.upstream_token_header:
            drop.add(sess.upstream_token_header.lower())  # only the sidecar may set the upstream's token header
        frozen = frozenset(drop)
        self._drop_cache = (policy, names, frozen)
        return names, frozen

    def _upstream_headers(self, request: web.Request, ex: Exchange, token: str) -> list[tuple[str, str]]:
        """Headers for the upstream request, in order, repeats kept; Host is added by the caller."""
        state = self.state
        names, drop = self._drop_set(ex.policy)
        out = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
        ident = ex.identity
        for n, v in zip(names, (ident.human_id, ident.agent_id, ident.team_id, ident.session_id), strict=True):
            if v:
                out.append((n, v))
        if token and state.settings.forward_bearer_token:
            sess = ex.policy.doc.session if ex.policy is not None else None
            hdr = (sess.upstream_token_header if sess is not None else "") or "Authorization"
            out.append((hdr, f"Bearer {token}" if hdr.lower() == "authorization" else token))
        peer = request.remote or ""
        prior = request.headers.get("X-Forwarded-For")
        out.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
        out.append(("X-Forwarded-Host", request.host))
        out.append(("X-Forwarded-Proto", "https" if request.secure else "http"))
        if ex.traceparent:
            out.append(("traceparent", ex.traceparent))
        return out

    def _upstream_path(self, request: web.Request) -> str:
        raw = request.raw_path
        prefix = self.state.settings.strip_prefix
        if prefix:
            path, sep, query = raw.partition("?")
            if path == prefix:
                path = "/"
            elif path.startswith(prefix + "/"):
                path = path[len(prefix) :]
            raw = path + (sep + query if sep else "")
        return raw

    def _unreachable(self, ex: Exchange, what: str, exc: BaseException) -> web.Response:
        log.warning("upstream %s: %s", what, exc)
        insp = ex.inspection
        msg_id = insp.messages[0].id if insp and len(insp.messages) == 1 else None
        for i, (m, _d) in enumerate(ex.decisions):
            ex.decisions[i] = (m, Decision(allowed=True, status=502, reason="upstream_unavailable"))
        body_out = jsonrpc.error_body(
            msg_id, jsonrpc.UPSTREAM_ERROR, "upstream MCP server unreachable", "upstream_unavailable"
        )
        ex.status = 502
        ex.bytes_out = len(body_out)
        return _json_response(502, body_out)

    async def _forward(
        self, request: web.Request, ex: Exchange, body: bytes | None, token: str, path: str | None = None
    ) -> web.StreamResponse:
        state = self.state
        headers = self._upstream_headers(request, ex, token)
        path = self._upstream_path(request) if path is None else path
        filtered = not ex.unfiltered and gate.filters_answer(request.method, ex.inspection)
        if filtered or ex.decoded:
            # Filtered answers are asked for unencoded (and decoded anyway if the upstream ignores it);
            # a decoded request body goes on without its Content-Encoding.
            drop = {"accept-encoding", "content-encoding"} if filtered else {"content-encoding"}
            headers = [(k, v) for k, v in headers if k.lower() not in drop]
            if filtered:
                headers.append(("Accept-Encoding", "identity"))
        pool = state.pool
        answer: _Answer
        t_up = time.perf_counter()
        if pool is not None and request.method != "HEAD" and (body is not None or not request.body_exists):
            # The common case (a JSON-RPC POST, a GET stream, a DELETE): the pooled hot-path client.
            try:
                head = header_block(headers)
            except ValueError as exc:
                return self._deny_plain(ex, 400, jsonrpc.INVALID_REQUEST, str(exc), "invalid_header_value")
            try:
                answer = await pool.request(request.method, state.upstream_base_path + path, head, body)
            except UpstreamError as exc:
                ex.upstream_wait += time.perf_counter() - t_up
                return self._unreachable(ex, f"{pool.host}:{pool.port}", exc)
        else:
            assert state.session is not None
            url = state.settings.upstream_url + path
            data: Any = body
            if body is None and request.body_exists:
                data = request.content
            headers.append(("Host", state.upstream_host))
            try:
                resp = await state.session.request(
                    request.method, url, headers=headers, data=data, allow_redirects=False
                )
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                ex.upstream_wait += time.perf_counter() - t_up
                return self._unreachable(ex, url, exc)
            answer = _AiohttpAnswer(resp)
        ex.upstream_wait += time.perf_counter() - t_up
        try:
            if filtered:
                return await self._relay_filtered(request, ex, answer)
            return await self._relay(request, ex, answer)
        finally:
            answer.release()

    def _visible(self, ex: Exchange) -> Any:
        policy = ex.policy
        now = time.time()
        ident = ex.identity

        def visible(key: str, item: Any) -> bool:
            return policy is not None and bool(policy.item_visible(ident, key, item, now))

        return visible

    def _unfilterable(self, ex: Exchange, why: str) -> web.Response:
        """A filtered answer the gateway cannot read: a JSON-RPC error, never the upstream's bytes."""
        log.warning("upstream answer not filterable: %s", why)
        insp = ex.inspection
        msg_id = insp.messages[0].id if insp and len(insp.messages) == 1 else None
        reason = "upstream_answer_unfilterable"
        for i, (m, _d) in enumerate(ex.decisions):
            ex.decisions[i] = (m, Decision(allowed=True, status=502, reason=reason))
        body_out = jsonrpc.error_body(msg_id, jsonrpc.UPSTREAM_ERROR, f"answer could not be filtered: {why}", reason)
        ex.status = 502
        ex.bytes_out = len(body_out)
        return _json_response(502, body_out)

    async def _relay_filtered(self, request: web.Request, ex: Exchange, upstream: _Answer) -> web.StreamResponse:
        """Relay an answer with every list result filtered per caller (sidecar/streams.py has the rule)."""
        ex.status = upstream.status
        encoding = ",".join(v for k, v in upstream.headers if k.lower() == "content-encoding")
        headers = [(k, v) for k, v in upstream.headers if k.lower() not in _RESP_DROP_DECODED]
        ctype = upstream.content_type
        visible = self._visible(ex)
        strict = request.method in gate.BODY_VERBS  # the body asked for a list: the answer must be one we read
        if ctype.startswith("text/event-stream"):
            chunks = upstream.iter_any()
            if codings(encoding):
                chunks = decode_stream(chunks, encoding, _MAX_STREAM)
            resp = web.StreamResponse(status=upstream.status, headers=headers)
            await resp.prepare(request)
            t = time.perf_counter()
            try:
                async for event in iter_sse_events(chunks):
                    out = filter_sse_event(event, visible)
                    if out:
                        await resp.write(out)
                        ex.bytes_out += len(out)
                await resp.write_eof()
            except (Unfilterable, EncodingError) as exc:
                # Mid-stream there is no way to send an error in place: the stream ends here.
                log.warning("filtered stream ended: %s", exc)
            except (aiohttp.ClientError, ConnectionResetError, asyncio.CancelledError) as exc:
                log.info("stream ended early: %s", exc.__class__.__name__)
                if isinstance(exc, asyncio.CancelledError):
                    ex.upstream_wait += time.perf_counter() - t
                    raise
            ex.upstream_wait += time.perf_counter() - t
            return resp
        t = time.perf_counter()
        try:
            raw = await upstream.read()
        except (aiohttp.ClientError, ConnectionResetError) as exc:
            ex.upstream_wait += time.perf_counter() - t
            return self._unreachable(ex, "response body", exc)
        ex.upstream_wait += time.perf_counter() - t
        if codings(encoding):
            try:
                raw = decode_body(raw, encoding, _MAX_STREAM)
            except EncodingError as exc:
                return self._unfilterable(ex, str(exc))
        if raw.strip() and ("json" in ctype or strict):
            try:
                raw = filter_json_body(raw, visible)
            except Unfilterable as exc:
                return self._unfilterable(ex, str(exc))
        ex.bytes_out = len(raw)
        return web.Response(status=upstream.status, body=raw, headers=headers)

    async def _relay(self, request: web.Request, ex: Exchange, upstream: _Answer) -> web.StreamResponse:
        """Relay an answer unchanged (streamed unless small)."""
        ex.status = upstream.status
        headers = [(k, v) for k, v in upstream.headers if k.lower() not in _RESP_DROP]
        ctype = upstream.content_type
        is_sse = ctype.startswith("text/event-stream")
        length = upstream.content_length
        if not is_sse and length is not None and length <= 65536:
            t = time.perf_counter()
            try:
                raw = await upstream.read()
            except (aiohttp.ClientError, ConnectionResetError) as exc:
                ex.upstream_wait += time.perf_counter() - t
                return self._unreachable(ex, "response body", exc)
            ex.upstream_wait += time.perf_counter() - t
            ex.bytes_out = len(raw)
            return web.Response(status=upstream.status, body=raw, headers=headers)
        resp = web.StreamResponse(status=upstream.status, headers=headers)
        await resp.prepare(request)
        t = time.perf_counter()
        try:
            async for chunk in upstream.iter_any():
                await resp.write(chunk)
                ex.bytes_out += len(chunk)
            await resp.write_eof()
        except (aiohttp.ClientError, ConnectionResetError, asyncio.CancelledError) as exc:
            # Either side went away mid-stream; the exchange still gets audited.
            log.info("stream ended early: %s", exc.__class__.__name__)
            if isinstance(exc, asyncio.CancelledError):
                ex.upstream_wait += time.perf_counter() - t
                raise
        ex.upstream_wait += time.perf_counter() - t
        return resp

    # -- metrics and audit -----------------------------------------------------------------------

    def _finish(self, ex: Exchange, scope: tuple[str, str, str, str]) -> None:
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
        if not ex.audit or state.spool is None:
            return
        latency_ms = int(elapsed * 1000)
        for msg, d in ex.decisions:
            if msg.kind == "response" and d.allowed:
                continue  # a client answering a server request decides nothing
            payload = self._payload(ex, scope, msg, d, status, latency_ms)
            # Written (one O_APPEND write) before the handler returns, i.e. before aiohttp sends the
            # response bytes: a client that saw an answer can rely on its audit event being on disk.
            if state.spool.append_line(self._encoder.line(payload, ex.traceparent)) and state.sender is not None:
                state.sender.notify()

    def _payload(
        self,
        ex: Exchange,
        scope: tuple[str, str, str, str],
        msg: jsonrpc.Message,
        d: Decision,
        status: int,
        latency_ms: int,
    ) -> dict[str, Any]:
        ns, server, cluster, team = scope
        ident = ex.identity
        p: dict[str, Any] = {
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
            p["prompt_name" if msg.method == "prompts/get" else "resource_uri"] = msg.target
        if msg.id is not None:
            p["rpc_id"] = msg.id
        for key in (
            "matched_grant",
            "matched_grant_namespace",
            "matched_session",
            "matched_session_namespace",
            "required_trust",
            "required_side_effect",
            "risk_level",
            "admin_trust",
            "consented_trust",
            "effective_trust",
            "would_deny_reason",
        ):
            val = getattr(d, key)
            if val:
                p[key] = val
        if ex.traceparent:
            p["trace_id"] = ex.traceparent.split("-")[1] if ex.traceparent.count("-") >= 3 else ""
        return p


async def _startup(app: web.Application) -> None:
    state = app[_STATE]
    s = state.settings
    state.session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),  # no total timeout: streams live long (§11.19)
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    state.oauth = OAuthVerifier(state.session)
    if s.platform_token_issuer:
        state.platform = PlatformVerifier(state.session, jwks_url=s.platform_jwks_url, issuer=s.platform_token_issuer)
    up = urlsplit(s.upstream_url)
    if s.upstream_client == "fast" and up.scheme == "http" and up.hostname:
        state.pool = UpstreamPool(up.hostname, up.port or 80, host_header=up.netloc)
    state.store.check()
    state.tasks.append(asyncio.create_task(state.store.watch(), name="policy-watch"))
    if state.spool is not None:
        state.tasks.append(asyncio.create_task(sync_loop(state.spool), name="audit-sync"))
        if s.analytics_ingest_url:
            state.sender = AuditSender(
                state.spool, s.analytics_ingest_url, api_key=s.analytics_api_key, batch_size=s.audit_batch_size
            )
            state.tasks.append(asyncio.create_task(state.sender.run(), name="audit-send"))


async def _cleanup(app: web.Application) -> None:
    state = app[_STATE]
    for t in state.tasks:
        t.cancel()
    for t in state.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    if state.session is not None:
        await state.session.close()
    if state.pool is not None:
        await state.pool.close()
    if state.spool is not None:
        state.spool.close()


def build_state(settings: SidecarSettings) -> SidecarState:
    """Policy store, metrics, spool and tracer for one sidecar."""
    holder: dict[str, AuditSpool] = {}
    metrics = SidecarMetrics(lambda: holder["spool"].counters if "spool" in holder else None)

    store: PolicyStore

    def on_reload(ok: bool) -> None:
        metrics.reloads.labels("success" if ok else "error").inc()
        if ok and store.current is not None:
            if _auth_mode(store.current) in ("oauth", "platform"):
                preload()  # the JWT library is loaded with the first OAuth policy, not per request
            metrics.last_reload.set(time.time())
            doc = store.current.doc
            metrics.set_revision(doc.revision, doc.schema_version)

    store = PolicyStore(settings.policy_file, poll_interval=settings.policy_poll_interval, on_reload=on_reload,
                        accept=lambda p: policy_refusal(p, settings.trusted_proxy_spiffe_id))
    spool = None
    if settings.audit_spool_dir:
        spool = AuditSpool(settings.audit_spool_dir, max_bytes=settings.audit_spool_max_bytes)
        holder["spool"] = spool
    elif settings.analytics_ingest_url:
        raise ValueError("ANALYTICS_INGEST_URL needs AUDIT_SPOOL_DIR: audit events are spooled to disk before sending")
    provider = TracerProvider()
    if settings.otel_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint.rstrip("/") + "/v1/traces"))
        )
    up = urlsplit(settings.upstream_url)
    return SidecarState(
        settings=settings,
        store=store,
        metrics=metrics,
        spool=spool,
        tracer=provider.get_tracer("mcp-sentinel-sidecar"),
        upstream_host=up.netloc,
        upstream_base_path=up.path.rstrip("/"),
    )


def create_app(settings: SidecarSettings, state: SidecarState | None = None) -> web.Application:
    """The proxy application (health/ready/status under /.sentinel/ and their upstream-compatible aliases)."""
    state = state or build_state(settings)
    # auto_decompress off: the gateway undoes content codings itself (sidecar/encoding.py), bounded,
    # and only codings it can inspect; aiohttp's own decoding would hide which coding was sent.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        handler_args={"max_field_size": 16384, "auto_decompress": False},
    )
    app[_STATE] = state
    sc = Sidecar(state)
    for prefix in (RESERVED_PREFIX, ""):
        app.router.add_get(prefix + "/health", sc.health, allow_head=True)
        app.router.add_get(prefix + "/ready", sc.ready, allow_head=True)
        app.router.add_get(prefix + "/config/status", sc.config_status, allow_head=True)
    app.router.add_route("*", "/{tail:.*}", sc.handle)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    install_refusals(app)
    return app


def state_of(app: web.Application) -> SidecarState:
    """The shared state of an app built by `create_app`."""
    return app[_STATE]


def create_metrics_app(state: SidecarState) -> web.Application:
    """The metrics listener: `/metrics` (Prometheus) and `/health`; never on the public port (§11.17)."""

    async def metrics(_request: web.Request) -> web.Response:
        data = generate_latest(state.metrics.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app
