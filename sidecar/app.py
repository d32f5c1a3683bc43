"""The enforcement sidecar: inspect -> authenticate -> authorize -> forward -> audit (upstream §4.3).

`create_app(settings)` returns the proxy `web.Application`; `create_metrics_app(state)` the
separate metrics listener. Everything that is not a `tools/call` is forwarded unchanged and
streamed without buffering; denials are JSON-RPC error bodies (§11.13).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import posixpath
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
from mcp_sentinel.policy.types import AuthzRequest, Decision, Identity
from sidecar.audit import AuditSender, AuditSpool, EventEncoder, sync_loop
from sidecar.metrics import SidecarMetrics
from sidecar.mtls import MTLS_REASONS, mtls_identity
from sidecar.oauth import AuthFailure, OAuthVerifier, bearer_from, claims_identity, preload
from sidecar.policy_store import PolicyStore
from sidecar.refusals import install as install_refusals
from sidecar.settings import SidecarSettings
from sidecar.streams import filter_json_body, filter_sse_event, iter_sse_events
from sidecar.upstream import UpstreamError, UpstreamPool, header_block

log = logging.getLogger("sidecar")

# The API's live-inventory probe (functions/api/inventory.py): a token-gated, list-only path that
# reaches the MCP server unfiltered and unaudited. Upstream instead skipped auditing any request
# whose agent id was "mcp-runtime-live-inventory" (§4.8), which in header mode anyone can claim.
_INVENTORY = "/.sentinel/inventory"
INVENTORY_TOKEN_HEADER = "X-Sentinel-Inventory-Token"
_LIST_ONLY = frozenset(
    {
        "initialize",
        "notifications/initialized",
        "notifications/cancelled",
        "ping",
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    }
)
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
# Request headers the sidecar sets itself; a client's copies are dropped, never forwarded alongside ours.
# `authorization`: the client's credential never reaches the upstream (MCP SEC; §11.16).
_OWN = frozenset(
    {"authorization", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "traceparent",
     INVENTORY_TOKEN_HEADER.lower()}
)
_OAUTH_METADATA = "/.well-known/oauth-protected-resource"
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


def _public_url(state: SidecarState, request: web.Request, path: str) -> str:
    """Public URL of `path`: EXTERNAL_BASE_URL, else the Host header; X-Forwarded-* ignored (anti-spoofing)."""
    clean = posixpath.normpath(path) if path not in ("", "/") else "/"
    if path.endswith("/") and clean != "/":
        clean += "/"
    base = state.settings.external_base_url
    if base:
        return base + clean
    scheme = "https" if request.secure else "http"
    return f"{scheme}://{request.host}{clean}"


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
        if _auth_mode(policy) != "oauth":
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
        body = {
            "resource": _public_url(self.state, request, suffix),
            "authorization_servers": [policy.doc.auth.issuer_url],
            "bearer_methods_supported": ["header"],
        }
        return web.Response(
            status=200, body=b"" if head else json.dumps(body).encode(), content_type="application/json"
        )

    async def inventory(self, request: web.Request, policy: Any) -> web.StreamResponse:
        """`/.sentinel/inventory/<mcp path>`: the upstream's own listings for the API's live inventory.

        Needs `INVENTORY_TOKEN` configured and sent in `X-Sentinel-Inventory-Token`; carries only
        handshake and listing methods (a `tools/call` is refused, so the token grants no tool use);
        forwarded to `<mcp path>` unfiltered (the point is to see what the server really serves,
        which per-caller filtering would hide) and not audited (it decides nothing about a caller).
        """
        state = self.state
        count = state.metrics.inventory_requests
        token = state.settings.inventory_token
        if not token:
            count.labels("disabled").inc()
            return _plain_json(404, {"error": "inventory_disabled"})
        given = request.headers.get(INVENTORY_TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            count.labels("unauthorized").inc()
            return _plain_json(401, {"error": "inventory_unauthorized"})
        ex = Exchange(method=request.method, path=request.path, started=time.perf_counter(), policy=policy)
        body: bytes | None = None
        if request.method == "POST":
            if (request.content_length or 0) > state.settings.max_body_bytes:
                count.labels("bad_request").inc()
                return _plain_json(413, {"error": "body_too_large"})
            body = await request.read()
            insp = jsonrpc.inspect_body(body)
            if not insp.ok:
                count.labels("bad_request").inc()
                return _plain_json(400, {"error": "rpc_inspection_failed", "message": insp.error})
            refused = [m.method for m in insp.messages if m.method and m.method not in _LIST_ONLY]
            if refused:
                count.labels("method_not_allowed").inc()
                return _plain_json(403, {"error": "inventory_method_not_allowed", "method": refused[0]})
        elif request.method not in ("GET", "DELETE"):
            count.labels("method_not_allowed").inc()
            return _plain_json(405, {"error": "method_not_allowed"})
        count.labels("forwarded").inc()
        upstream_path = request.raw_path[len(_INVENTORY) :] or "/"
        return await self._forward(request, ex, body, "", path=upstream_path)

    # -- the pipeline --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every proxied request."""
        state = self.state
        policy = state.store.current  # one immutable snapshot for the whole exchange
        path = request.path
        if path == _OAUTH_METADATA or path.startswith(_OAUTH_METADATA + "/"):
            return await self.oauth_metadata(request, policy)
        if path == _INVENTORY or path.startswith(_INVENTORY + "/"):
            return await self.inventory(request, policy)
        ex = Exchange(method=request.method, path=path, started=time.perf_counter(), policy=policy)
        scope = _scope(state, policy)
        inflight = state.metrics.child(state.metrics.inflight, *scope)
        inflight.inc()
        try:
            resp = await self._pipeline(request, ex)
        finally:
            inflight.dec()
            self._finish(ex, scope)
        return resp

    async def _pipeline(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        state = self.state
        policy = ex.policy
        body: bytes | None = None
        insp: jsonrpc.Inspection | None = None
        tp_in = request.headers.get("traceparent", "")
        ex.traceparent = self._traceparent(tp_in)

        # 1. inspect (PUT/PATCH too: a JSON-RPC call by another verb must not bypass governance, §11.15)
        if request.method in ("POST", "PUT", "PATCH"):
            ctype = request.headers.get("Content-Type", "")
            if ctype and "json" not in ctype.lower():
                return self._deny_plain(
                    ex, 415, jsonrpc.INVALID_REQUEST, "POST bodies must be application/json", "rpc_inspection_failed"
                )
            ex.audit = True
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
            insp = jsonrpc.inspect_body(body)
            ex.inspection = insp
            if not insp.ok:
                return self._deny_plain(ex, 400, insp.error_code, insp.error, "rpc_inspection_failed", insp.error_id)
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

        # 4. authorize (the body is the only source of truth)
        if insp is not None:
            now = time.time()
            denied: list[tuple[jsonrpc.Message, Decision]] = []
            for msg in insp.messages:
                if not msg.method:
                    continue  # a client's JSON-RPC response to a server request: allowed (§11.12)
                if msg.is_tool_call:
                    if policy is None:
                        d = Decision(allowed=False, status=503, reason="policy_unavailable")
                    else:
                        d = policy.authorize(AuthzRequest(ex.identity, msg.method, msg.tool_name), now)
                    if not d.allowed:
                        denied.append((msg, d))
                else:
                    d = Decision(policy_version=self._doc_version(policy))
                ex.decisions.append((msg, d))
            if denied:
                return self._deny_rpc(request, ex, insp, denied)

        # 5. forward
        return await self._forward(request, ex, body, token)

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
        # Audience binding: the configured audience, else this resource's own public URL (MCP SEC).
        audience = auth.audience or _public_url(self.state, request, request.path)
        claims = await self.state.oauth.verify(token, issuer=auth.issuer_url, audience=audience)
        human, agent, team, sid = claims_identity(claims)
        names = _header_names(self.state, policy)
        session = sid or request.headers.get(names[3], "").strip()
        return Identity(human_id=human, agent_id=agent, team_id=team, session_id=session), token

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
        if fail.reason in ("missing_bearer_token", "invalid_token"):
            meta = _public_url(self.state, request, _OAUTH_METADATA + request.path)
            challenge = f'Bearer realm="mcp-sentinel", resource_metadata="{meta}"'
            if fail.reason == "invalid_token":
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
        if first.reason in ("missing_identity", "missing_session") and mode not in ("oauth", "mtls"):
            extra = {"adapter_required": True, "required_headers": list(_header_names(self.state, ex.policy))}
        else:
            extra = _mtls_extra(ex.policy, first.reason)

        def err(m: jsonrpc.Message, d: Decision | None) -> dict[str, Any]:
            if d is None:
                return jsonrpc.error_object(
                    m.id, jsonrpc.FORBIDDEN, "batch rejected: another call in it was denied", "batch_rejected"
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
        list_ids = self._tools_list_ids(ex)
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
            return await self._relay(request, ex, answer, list_ids)
        finally:
            answer.release()

    @staticmethod
    def _tools_list_ids(ex: Exchange) -> set[Any]:
        insp = ex.inspection
        if insp is None:
            return set()
        return {json.dumps(m.id) for m in insp.messages if m.method == "tools/list" and m.has_id}

    def _visible(self, ex: Exchange) -> Any:
        policy = ex.policy
        now = time.time()
        ident = ex.identity

        def visible(name: str) -> bool:
            return policy is not None and bool(policy.tool_visible(ident, name, now))

        return visible

    async def _relay(
        self, request: web.Request, ex: Exchange, upstream: _Answer, list_ids: set[Any]
    ) -> web.StreamResponse:
        ex.status = upstream.status
        headers = [(k, v) for k, v in upstream.headers if k.lower() not in _RESP_DROP]
        ctype = upstream.content_type
        is_sse = ctype.startswith("text/event-stream")
        length = upstream.content_length
        if not is_sse and (list_ids or (length is not None and length <= 65536)):
            t = time.perf_counter()
            try:
                raw = await upstream.read()
            except (aiohttp.ClientError, ConnectionResetError) as exc:
                ex.upstream_wait += time.perf_counter() - t
                return self._unreachable(ex, "response body", exc)
            ex.upstream_wait += time.perf_counter() - t
            if list_ids and "json" in ctype:
                raw = filter_json_body(raw, list_ids, self._visible(ex))
            ex.bytes_out = len(raw)
            return web.Response(status=upstream.status, body=raw, headers=headers)
        resp = web.StreamResponse(status=upstream.status, headers=headers)
        await resp.prepare(request)
        t = time.perf_counter()
        try:
            if is_sse and list_ids:
                visible = self._visible(ex)
                async for event in iter_sse_events(upstream.iter_any()):
                    out = filter_sse_event(event, list_ids, visible)
                    await resp.write(out)
                    ex.bytes_out += len(out)
            else:
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
            if not msg.method and d.allowed:
                continue
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
            if _auth_mode(store.current) == "oauth":
                preload()  # the JWT library is loaded with the first OAuth policy, not per request
            metrics.last_reload.set(time.time())
            doc = store.current.doc
            metrics.set_revision(doc.revision, doc.schema_version)

    store = PolicyStore(settings.policy_file, poll_interval=settings.policy_poll_interval, on_reload=on_reload)
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
    app = web.Application(client_max_size=settings.max_body_bytes, handler_args={"max_field_size": 16384})
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
