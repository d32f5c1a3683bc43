"""What the gateway answers itself: health, readiness, policy status, OAuth metadata, metrics.

None of these is forwarded or audited. `/.sentinel/` is the gateway's reserved path space on the
public port (health, ready and status also have their upstream-compatible aliases); the live
inventory under it is served only on its own listener (`sidecar.inventory`), so the public port
answers 404 there. Upstream instead skipped auditing any request whose agent id was
"mcp-runtime-live-inventory" (§4.8), which in header mode anyone can claim.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mcp_sentinel.policy.evaluate import CompiledPolicy
from sidecar.exchange import auth_mode
from sidecar.resource import OAUTH_METADATA, resource_url
from sidecar.state import SidecarState

RESERVED_PREFIX = "/.sentinel"
INVENTORY_PATH = RESERVED_PREFIX + "/inventory"
INVENTORY_TOKEN_HEADER = "X-Sentinel-Inventory-Token"


def _json(status: int, body: dict[str, Any], head: bool = False) -> web.Response:
    return web.Response(status=status, body=b"" if head else json.dumps(body).encode(), content_type="application/json")


class LocalRoutes:
    """The local endpoints of one app."""

    def __init__(self, state: SidecarState) -> None:
        self.state = state

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

    def oauth_metadata(self, request: web.Request, policy: CompiledPolicy | None) -> web.Response:
        """RFC 9728 protected-resource metadata (§3.12); never forwarded, never audited."""
        head = request.method == "HEAD"
        mode = auth_mode(policy)
        auth = policy.doc.auth if policy is not None else None
        if auth is None or mode not in ("oauth", "platform"):
            body = {
                "error": "oauth_not_enabled",
                "message": "This MCP server uses identity headers, not OAuth; connect through the sentinel adapter.",
                "adapter_required": True,
            }
            return _json(404, body, head)
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405)
        suffix = request.path[len(OAUTH_METADATA) :] or "/"
        resource = resource_url(auth.resource, self.state.settings.external_base_url, suffix)
        if not resource:
            return _json(503, {"error": "resource_url_unconfigured"})
        meta: dict[str, Any] = {"resource": resource, "bearer_methods_supported": ["header"]}
        if mode == "oauth":
            meta["authorization_servers"] = [auth.issuer_url]
        return _json(200, meta, head)

    def add_to(self, app: web.Application) -> None:
        """Register health, ready and status under the reserved prefix and at their upstream paths."""
        for prefix in (RESERVED_PREFIX, ""):
            app.router.add_get(prefix + "/health", self.health, allow_head=True)
            app.router.add_get(prefix + "/ready", self.ready, allow_head=True)
            app.router.add_get(prefix + "/config/status", self.config_status, allow_head=True)


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
