"""The live-inventory listener: the API reads what the MCP server really serves, and nothing else.

Served on its own port (`INVENTORY_PORT`), never on the public proxy port (which answers 404 for
`/.sentinel/inventory`): the Service and ingress never expose it publicly and a NetworkPolicy admits
only the API (knative/network/policies.yaml). `/.sentinel/inventory/<mcp path>` forwards to
`<mcp path>` unfiltered (the point is to see the whole server, which per-caller filtering would
hide) and unaudited when it succeeds (it decides nothing about a caller); every refusal is audited.

Each request carries `X-Sentinel-Inventory-Token`: an Ed25519-signed token from the API whose
audience is this server (`mcp_sentinel.inventory_token`), verified against the public keys in
`INVENTORY_PUBLIC_KEYS_FILE` (re-read when the file changes, so a key rotation needs no restart).
A token captured by whoever runs some other server's address opens nothing here.

Whatever the verb, a request body is decoded (only identity encoding: anything else is 415) and
inspected, and may hold only handshake and listing messages (`_LIST_ONLY`); a POST needs such a
body, GET and DELETE (session mechanics: the SSE stream, session end) must have none; every other
verb is 405.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from aiohttp import web

from mcp_sentinel import jsonrpc
from mcp_sentinel.inventory_token import InventoryKeyError, TokenRejected, load_verify_keys, verify
from mcp_sentinel.policy.types import Decision
from sidecar.exchange import Exchange, scope
from sidecar.forward import Forwarder
from sidecar.local_routes import INVENTORY_PATH, INVENTORY_TOKEN_HEADER
from sidecar.record import Recorder
from sidecar.state import SidecarState

log = logging.getLogger("sidecar.inventory")

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
_KEY_CHECK_INTERVAL = 5.0


class KeyRing:
    """The verification keys, re-read from their file when it changes (checked at most every 5 s).

    A file that cannot be read or parsed after a change keeps the previous keys (logged), so a
    half-written ConfigMap update never locks the API out.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.keys: dict[str, Any] = load_verify_keys(path)  # InventoryKeyError at start-up: refuse to start
        self._sig = self._stat()
        self._checked = time.monotonic()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> dict[str, Any]:
        """The keys to verify with now."""
        now = time.monotonic()
        if now - self._checked >= _KEY_CHECK_INTERVAL:
            self._checked = now
            sig = self._stat()
            if sig != self._sig:
                self._sig = sig
                try:
                    self.keys = load_verify_keys(self.path)
                    log.info("inventory public keys reloaded (%d)", len(self.keys))
                except InventoryKeyError as exc:
                    log.warning("inventory public keys not reloaded, keeping the previous ones: %s", exc)
        return self.keys


class InventoryHandler:
    """Handles `/.sentinel/inventory/<mcp path>` on the inventory listener."""

    def __init__(self, state: SidecarState, keys: KeyRing) -> None:
        self.state = state
        self.keys = keys
        # The proxy's own forwarding and audit code (one per listener, as each app has its own).
        self.forwarder = Forwarder(state)
        self.recorder = Recorder(state)

    def _refuse(
        self, ex: Exchange, status: int, error: str, audited: str, msg: jsonrpc.Message | None = None, **extra: Any
    ) -> web.Response:
        """A refusal: counted, audited (who tried what on the inventory port is worth knowing), plain JSON."""
        self.state.metrics.inventory_requests.labels(error.removeprefix("inventory_")).inc()
        policy = ex.policy
        version = ""
        if policy is not None and policy.doc.policy is not None:
            version = policy.doc.policy.policy_version
        d = Decision(allowed=False, status=status, reason=audited, policy_version=version)
        ex.decisions = [(msg or jsonrpc.Message(kind="request", method=""), d)]
        ex.status = status
        ex.audit = True
        body = {"error": error, **extra}
        resp = web.json_response(body, status=status)
        ex.bytes_out = len(resp.body) if isinstance(resp.body, bytes) else 0
        self.recorder.finish(ex, scope(self.state.settings, policy))
        log.warning("inventory request refused: %s (%s %s)", audited, ex.method, ex.path)
        return resp

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One request on the inventory listener."""
        state = self.state
        policy = state.store.current
        path = request.path
        # Unfiltered: the upstream's own listings, whatever the verb (the proxy filters list answers per caller).
        ex = Exchange(method=request.method, path=path, started=time.perf_counter(), policy=policy, unfiltered=True)
        if path != INVENTORY_PATH and not path.startswith(INVENTORY_PATH + "/"):
            return web.json_response({"error": "not_found"}, status=404)
        s = state.settings
        given = request.headers.getall(INVENTORY_TOKEN_HEADER, ())
        try:
            if len(given) > 1:
                raise TokenRejected("ambiguous_token")
            verify(given[0].strip() if given else "", self.keys.current(), s.server_namespace, s.server_name)
        except TokenRejected as exc:
            return self._refuse(ex, 401, "inventory_unauthorized", f"inventory_{exc.reason}", reason=exc.reason)
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            return self._refuse(ex, 415, "inventory_unsupported_encoding", "inventory_unsupported_encoding")
        body: bytes | None = None
        if request.body_exists:
            if (request.content_length or 0) > s.max_body_bytes:
                return self._refuse(ex, 413, "inventory_body_too_large", "body_too_large")
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return self._refuse(ex, 413, "inventory_body_too_large", "body_too_large")
            ex.bytes_in = len(body)
        if body:
            insp = jsonrpc.inspect_body(body)
            ex.inspection = insp
            if not insp.ok:
                return self._refuse(ex, 400, "inventory_bad_request", "rpc_inspection_failed", message=insp.error)
            for m in insp.messages:
                if m.method not in _LIST_ONLY:  # a response (no method) has no business here either
                    return self._refuse(ex, 403, "inventory_method_not_allowed", "inventory_method_not_allowed", m,
                                        method=m.method or "(response)")
        if not ((request.method == "POST" and body) or (request.method in ("GET", "DELETE") and not body)):
            return self._refuse(ex, 405, "inventory_method_not_allowed", "inventory_verb_not_allowed",
                                verb=request.method)
        state.metrics.inventory_requests.labels("forwarded").inc()
        upstream_path = request.raw_path[len(INVENTORY_PATH):] or "/"
        return await self.forwarder.forward(request, ex, body, "", path=upstream_path)


def create_inventory_app(state: SidecarState) -> web.Application:
    """The inventory listener's app (InventoryKeyError when the key file is unusable)."""
    keys = KeyRing(state.settings.inventory_public_keys_file)
    handler = InventoryHandler(state, keys)
    app = web.Application(client_max_size=state.settings.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", handler.handle)
    return app
