"""What one sidecar process shares across requests, and its start-up and shutdown.

`build_state` makes the policy store, metrics, audit spool and tracer from the settings;
`startup`/`cleanup` (aiohttp hooks installed by `sidecar.app.create_app`) open and close the
upstream clients, the token verifiers and the background tasks (policy watch, spool sync, sender).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sidecar.audit import AuditSender, AuditSpool, sync_loop
from sidecar.exchange import auth_mode
from sidecar.metrics import SidecarMetrics
from sidecar.mtls import policy_refusal
from sidecar.oauth import OAuthVerifier, preload
from sidecar.pins import PinGuard
from sidecar.platform_token import PlatformVerifier
from sidecar.policy_store import PolicyStore
from sidecar.quota import QuotaGate
from sidecar.settings import SidecarSettings
from sidecar.upstream import UpstreamPool


@dataclass
class SidecarState:
    """Everything one sidecar process shares across requests (built by `build_state`)."""

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
    pins: PinGuard | None = None  # set by build_state: pinned tool definitions (sidecar/pins.py)
    quota: QuotaGate | None = None


STATE: web.AppKey[SidecarState] = web.AppKey("sidecar_state")


def state_of(app: web.Application) -> SidecarState:
    """The shared state of an app built by `create_app`."""
    return app[STATE]


def build_state(settings: SidecarSettings) -> SidecarState:
    """Policy store, metrics, spool and tracer for one sidecar."""
    holder: dict[str, AuditSpool] = {}
    metrics = SidecarMetrics(lambda: holder["spool"].counters if "spool" in holder else None)

    store: PolicyStore

    def on_reload(ok: bool) -> None:
        metrics.reloads.labels("success" if ok else "error").inc()
        if ok and store.current is not None:
            if auth_mode(store.current) in ("oauth", "platform"):
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
        pins=PinGuard(settings, lambda ok: metrics.pin_listings.labels("ok" if ok else "failed").inc()),
        quota=QuotaGate(metrics.registry, replicas=settings.quota_replicas, max_counters=settings.quota_max_counters),
    )


async def startup(app: web.Application) -> None:
    """Open the upstream clients and verifiers, check the policy, start the background tasks."""
    state = app[STATE]
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
    if state.pins is not None:
        state.pins.session = state.session
        state.tasks.append(asyncio.create_task(state.pins.run(lambda: state.store.current), name="pin-refresh"))
    if state.spool is not None:
        state.tasks.append(asyncio.create_task(sync_loop(state.spool), name="audit-sync"))
        if s.analytics_ingest_url:
            state.sender = AuditSender(
                state.spool, s.analytics_ingest_url, api_key=s.analytics_api_key, batch_size=s.audit_batch_size
            )
            state.tasks.append(asyncio.create_task(state.sender.run(), name="audit-send"))


async def cleanup(app: web.Application) -> None:
    """Stop the background tasks and close what `startup` opened."""
    state = app[STATE]
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
