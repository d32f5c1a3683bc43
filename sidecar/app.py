"""The enforcement sidecar: inspect -> authenticate -> authorize -> forward -> audit (upstream §4.3).

`create_app(settings)` returns the proxy `web.Application`; `create_metrics_app(state)` the
separate metrics listener. Everything that is not a `tools/call` is forwarded unchanged and
streamed without buffering; denials are JSON-RPC error bodies (§11.13).

This module is the composition: the pipeline's order lives in `Sidecar.handle`, each step in the
module named for it — `sidecar.inspect` (what is read), `sidecar.identify` (who calls),
`mcp_sentinel.policy` (the decision), `sidecar.deny` (answers the gateway writes),
`sidecar.forward` (the upstream hop), `sidecar.record` (metrics and audit), with shared state in
`sidecar.state`, per-request facts in `sidecar.exchange` and the local endpoints in
`sidecar.local_routes`.
"""

from __future__ import annotations

import time

from aiohttp import web
from opentelemetry import trace

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy.types import PUBLIC_METHODS, AuthzRequest, Decision
from sidecar import deny
from sidecar import inspect as gate
from sidecar.approval import ApprovalGate
from sidecar.errors import AmbiguousIdentity, AuthFailure, Refusal
from sidecar.exchange import Exchange, auth_mode, child_traceparent, doc_version, scope
from sidecar.forward import Forwarder
from sidecar.identify import TOKEN_MODES, identify_by_token, identify_by_transport
from sidecar.local_routes import (
    INVENTORY_PATH,
    INVENTORY_TOKEN_HEADER,
    RESERVED_PREFIX,
    LocalRoutes,
    create_metrics_app,
)
from sidecar.origin import OriginGuard
from sidecar.record import Recorder
from sidecar.refusals import install as install_refusals
from sidecar.resource import OAUTH_METADATA
from sidecar.settings import SidecarSettings
from sidecar.state import STATE, SidecarState, build_state, cleanup, startup, state_of

__all__ = [
    "INVENTORY_TOKEN_HEADER",
    "RESERVED_PREFIX",
    "Sidecar",
    "SidecarState",
    "build_state",
    "create_app",
    "create_metrics_app",
    "state_of",
]


def _too_large(limit: int) -> Refusal:
    return Refusal(413, jsonrpc.BODY_TOO_LARGE, f"request body exceeds {limit} bytes", "body_too_large")


class Sidecar:
    """The request pipeline; one instance per app (the inventory listener uses `Forwarder` and `Recorder` alone)."""

    def __init__(self, state: SidecarState) -> None:
        self.state = state
        s = state.settings
        self._origin = OriginGuard(s.allowed_hosts, s.allowed_origins, s.external_base_url)
        self.local = LocalRoutes(state)
        self.forwarder = Forwarder(state)
        self.recorder = Recorder(state)
        self.approvals = ApprovalGate(state)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every proxied request."""
        state = self.state
        policy = state.store.current  # one immutable snapshot for the whole exchange
        path = request.path
        if path == INVENTORY_PATH or path.startswith(INVENTORY_PATH + "/"):
            # Only on the inventory listener (sidecar/inventory.py); never reachable through the public port.
            return deny.plain_json(404, {"error": "not_found"})
        refusal = self._origin_refusal(request)
        if refusal is None and (path == OAUTH_METADATA or path.startswith(OAUTH_METADATA + "/")):
            return self.local.oauth_metadata(request, policy)
        ex = Exchange(method=request.method, path=path, started=time.perf_counter(), policy=policy)
        labels = scope(state.settings, policy)
        inflight = state.metrics.child(state.metrics.inflight, *labels)
        inflight.inc()
        resp: web.StreamResponse
        try:
            if refusal is not None:
                ex.audit = True
                resp = deny.refuse(state.settings, ex, refusal)
            else:
                resp = await self._pipeline(request, ex)
        finally:
            inflight.dec()
            self.recorder.finish(ex, labels)
        return resp

    def _origin_refusal(self, request: web.Request) -> Refusal | None:
        """403 for a `Host` or `Origin` that does not name this gateway (DNS rebinding; MCP transport)."""
        h = request.headers
        if not self._origin.host_allowed(h.getall("Host", [])):
            return Refusal(403, jsonrpc.FORBIDDEN, "Host is not one this gateway serves", "host_not_allowed")
        if not self._origin.origin_allowed(h.getall("Origin", [])):
            return Refusal(403, jsonrpc.FORBIDDEN, "Origin is not allowed", "origin_not_allowed")
        return None

    async def _inspect(self, request: web.Request, ex: Exchange) -> bytes | web.Response:
        """Step 1: read, decode and inspect the body (sidecar/inspect.py has the rules)."""
        settings = self.state.settings
        ex.audit = True  # refusals included
        ctype = request.headers.get("Content-Type", "")
        if ctype and "json" not in ctype.lower():
            return deny.deny_plain(settings, ex, 415, jsonrpc.INVALID_REQUEST, "POST bodies must be application/json",
                                   "rpc_inspection_failed")  # fmt: skip
        limit = settings.max_body_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            return deny.refuse(settings, ex, _too_large(limit))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return deny.refuse(settings, ex, _too_large(limit))
        ex.bytes_in = len(body)
        decoded = gate.decode_request_body(request, body, limit)
        if isinstance(decoded, Refusal):
            return deny.refuse(settings, ex, decoded)
        ex.decoded = decoded is not body
        insp = jsonrpc.inspect_body(decoded)
        ex.inspection = insp
        if not insp.ok:
            return deny.deny_plain(settings, ex, 400, insp.error_code, insp.error, "rpc_inspection_failed",
                                   insp.error_id)  # fmt: skip
        if request.method not in gate.BODY_VERBS:
            return deny.refuse(settings, ex, gate.body_not_allowed(request.method))
        mismatch = jsonrpc.header_mismatch(insp, request.headers.get("Mcp-Method"), request.headers.get("Mcp-Name"))
        if mismatch:
            return deny.deny_plain(settings, ex, 400, jsonrpc.HEADER_MISMATCH, mismatch, "header_mismatch",
                                   ex.single_id())  # fmt: skip
        return decoded

    async def _pipeline(self, request: web.Request, ex: Exchange) -> web.StreamResponse:
        settings = self.state.settings
        body: bytes | None = None
        ex.traceparent = self._traceparent(request.headers.get("traceparent", ""))

        # 1. inspect every body, whatever the verb
        if gate.must_inspect(request):
            read = await self._inspect(request, ex)
            if not isinstance(read, bytes):  # a refusal (not `isinstance(.., web.Response)`: that goes through abc)
                return read
            body = read
        insp = ex.inspection

        # 2-3. authenticate
        token = ""
        mode = auth_mode(ex.policy)
        try:
            if mode in TOKEN_MODES:
                ex.identity, token = await identify_by_token(self.state, request, ex.policy, mode)
            else:
                ex.identity = identify_by_transport(self.state, request, ex.policy, mode)
        except AuthFailure as fail:
            return deny.deny_auth(settings, request.path, ex, fail)
        except AmbiguousIdentity as amb:
            return deny.deny_plain(settings, ex, 400, jsonrpc.INVALID_REQUEST, str(amb), "ambiguous_identity",
                                   ex.single_id())  # fmt: skip

        # 4. authorize (the body is the only source of truth): every method, not only tools/call
        if insp is not None:
            now = time.time()
            denied: list[tuple[jsonrpc.Message, Decision]] = []
            for msg in insp.messages:
                if not msg.method:
                    continue  # a client's JSON-RPC response to a server request: allowed (§11.12)
                d = self._decide(ex, msg.method, msg.target, now)
                pins = self.state.pins
                if d.allowed and msg.is_tool_call and pins is not None and pins.pins(ex.policy) is not None:
                    d = await pins.check_call(ex.policy, msg.tool_name, d)  # sidecar/pins.py (pinning on only)
                if not d.allowed:
                    denied.append((msg, d))
                ex.decisions.append((msg, d))
            quota = self.state.quota
            if not denied and quota is not None and ex.policy is not None and ex.policy.quotas:
                denied = quota.check(ex.policy, ex.identity, ex.decisions)  # counts only what it lets through
            if denied:
                return deny.deny_rpc(settings, ex, insp, denied)
            if self.approvals.index(ex.policy) is not None:  # only when a grant asks for approvals
                denied = await self.approvals.check(ex, insp)
                if denied:
                    return deny.deny_rpc(settings, ex, insp, denied)
        elif request.method != "OPTIONS":
            # A bodyless stream (GET, resumed by Last-Event-ID), DELETE or HEAD: it carries answers and
            # server messages to the caller, so it needs an identity like any method (CORS preflight aside).
            ex.audit = True
            d = self._decide(ex, "", "", time.time())
            ex.decisions.append((jsonrpc.Message(kind="stream"), d))
            if not d.allowed:
                return deny.deny_stream(settings, ex, d)

        # 5. forward
        return await self.forwarder.forward(request, ex, body, token)

    def _decide(self, ex: Exchange, method: str, target: str, now: float) -> Decision:
        policy = ex.policy
        if policy is not None:
            return policy.authorize(AuthzRequest(ex.identity, method, target), now)
        if method in PUBLIC_METHODS or method.startswith("notifications/"):
            return Decision(policy_version=doc_version(self.state.settings, policy))
        # No policy, so not even observe mode is known: only the handshake passes.
        return Decision(allowed=False, status=503, reason="policy_unavailable")

    def _traceparent(self, inbound: str) -> str:
        tracer = self.state.tracer
        if tracer is None or not self.state.settings.otel_endpoint:
            # No exporter: spans would go nowhere, so only continue (or start) the W3C trace cheaply.
            return child_traceparent(inbound)
        ctx = self.state.propagator.extract({"traceparent": inbound} if inbound else {})
        span = tracer.start_span("http.server", context=ctx, kind=trace.SpanKind.SERVER)
        carrier: dict[str, str] = {}
        self.state.propagator.inject(carrier, context=trace.set_span_in_context(span))
        span.end()
        return carrier.get("traceparent", inbound)


def create_app(settings: SidecarSettings, state: SidecarState | None = None) -> web.Application:
    """The proxy application (health/ready/status under /.sentinel/ and their upstream-compatible aliases)."""
    state = state or build_state(settings)
    # auto_decompress off: the gateway undoes content codings itself (sidecar/encoding.py), bounded,
    # and only codings it can inspect; aiohttp's own decoding would hide which coding was sent.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        handler_args={"max_field_size": 16384, "auto_decompress": False},
    )
    app[STATE] = state
    sc = Sidecar(state)
    sc.local.add_to(app)
    app.router.add_route("*", "/{tail:.*}", sc.handle)
    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    install_refusals(app)
    return app
