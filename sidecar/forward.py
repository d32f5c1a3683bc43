"""Step 5 of the pipeline: send an authorized request upstream and relay its answer.

Requests go out on the pooled hot-path client (`sidecar.upstream`) when the body is known, else
on aiohttp (HEAD, streamed bodies, https). Answers are relayed unchanged (small ones whole,
the rest streamed without buffering), except list answers, which are filtered per caller
(`sidecar.streams`) and therefore asked for and relayed decoded. The time spent waiting on the
upstream is accounted on the exchange so the metrics can report the gateway's own latency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from mcp_sentinel import jsonrpc
from mcp_sentinel.policy.evaluate import CompiledPolicy
from sidecar import deny
from sidecar import inspect as gate
from sidecar.encoding import codings, decode_body, decode_stream
from sidecar.errors import EncodingError, Unfilterable, UpstreamError
from sidecar.exchange import Exchange, header_names
from sidecar.local_routes import INVENTORY_TOKEN_HEADER
from sidecar.pins import LIST_CHANGED, PinGuard
from sidecar.state import SidecarState
from sidecar.streams import Visible, filter_json_body, filter_sse_event, iter_sse_events
from sidecar.upstream import header_block

log = logging.getLogger("sidecar")

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
# Bound on a decoded filtered answer (a compressed upstream answer must not expand without limit).
_MAX_STREAM = 256 * 1024 * 1024
_SMALL = 65536  # answers up to this size (with a known length) are read whole, not streamed


class _Answer(Protocol):
    """What the relay needs from an upstream response (the pooled client's or aiohttp's)."""

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


async def _filtered_events(
    chunks: AsyncIterator[bytes], visible: Visible, pins: PinGuard | None
) -> AsyncIterator[bytes]:
    async for event in iter_sse_events(chunks):
        if pins is not None and LIST_CHANGED in event:
            pins.list_changed()  # the live definitions are listed again (sidecar/pins.py)
        out = filter_sse_event(event, visible)
        if out:
            yield out


class Forwarder:
    """Forwards for one app; caches the per-policy header drop set."""

    def __init__(self, state: SidecarState) -> None:
        self.state = state
        self._drop_cache: tuple[CompiledPolicy | None, tuple[str, str, str, str], frozenset[str]] | None = None

    def _drop_set(self, policy: CompiledPolicy | None) -> tuple[tuple[str, str, str, str], frozenset[str]]:
        """Identity header names and the request headers never forwarded, computed once per policy snapshot."""
        cached = self._drop_cache
        if cached is not None and cached[0] is policy:
            return cached[1], cached[2]
        names = header_names(self.state.settings, policy)
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
        names, drop = self._drop_set(ex.policy)
        out = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
        ident = ex.identity
        for n, v in zip(names, (ident.human_id, ident.agent_id, ident.team_id, ident.session_id), strict=True):
            if v:
                out.append((n, v))
        if token and self.state.settings.forward_bearer_token:
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

    async def forward(
        self, request: web.Request, ex: Exchange, body: bytes | None, token: str, path: str | None = None
    ) -> web.StreamResponse:
        """Send the request upstream (to `path`, default the request's own) and relay the answer."""
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
                return deny.deny_plain(state.settings, ex, 400, jsonrpc.INVALID_REQUEST, str(exc),
                                       "invalid_header_value")  # fmt: skip
            try:
                answer = await pool.request(request.method, state.upstream_base_path + path, head, body)
            except UpstreamError as exc:
                ex.upstream_wait += time.perf_counter() - t_up
                return deny.unreachable(ex, f"{pool.host}:{pool.port}", exc)
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
                return deny.unreachable(ex, url, exc)
            answer = _AiohttpAnswer(resp)
        ex.upstream_wait += time.perf_counter() - t_up
        try:
            if filtered:
                return await self._relay_filtered(request, ex, answer)
            return await self._relay(request, ex, answer)
        finally:
            answer.release()

    def _visible(self, ex: Exchange) -> Visible:
        policy = ex.policy
        now = time.time()
        ident = ex.identity

        pins = self.state.pins

        def visible(key: str, item: Mapping[str, Any]) -> bool:
            if key == "tools" and pins is not None and not pins.listed_tool_ok(policy, item):
                return False  # its definition differs from its pin (sidecar/pins.py)
            return policy is not None and policy.item_visible(ident, key, item, now)

        return visible

    @staticmethod
    async def _read(ex: Exchange, upstream: _Answer) -> bytes | web.Response:
        """The whole answer body, its wait accounted; a 502 when the upstream breaks off."""
        t = time.perf_counter()
        try:
            return await upstream.read()
        except (aiohttp.ClientError, ConnectionResetError) as exc:
            return deny.unreachable(ex, "response body", exc)
        finally:
            ex.upstream_wait += time.perf_counter() - t

    @staticmethod
    async def _stream(
        request: web.Request, ex: Exchange, upstream: _Answer, headers: list[tuple[str, str]],
        pieces: AsyncIterator[bytes],
    ) -> web.StreamResponse:  # fmt: skip
        """Stream `pieces` to the client as they come, the wait accounted; the exchange is audited however it ends."""
        resp = web.StreamResponse(status=upstream.status, headers=headers)
        await resp.prepare(request)
        t = time.perf_counter()
        try:
            async for piece in pieces:
                await resp.write(piece)
                ex.bytes_out += len(piece)
            await resp.write_eof()
        except (Unfilterable, EncodingError) as exc:
            # A filtered stream that stops parsing: mid-stream there is no way to send an error in place.
            log.warning("filtered stream ended: %s", exc)
        except (aiohttp.ClientError, ConnectionResetError) as exc:
            log.info("stream ended early: %s", exc.__class__.__name__)  # either side went away
        except asyncio.CancelledError:
            log.info("stream ended early: CancelledError")
            raise
        finally:
            ex.upstream_wait += time.perf_counter() - t
        return resp

    async def _relay(self, request: web.Request, ex: Exchange, upstream: _Answer) -> web.StreamResponse:
        """Relay an answer unchanged (streamed unless small)."""
        ex.status = upstream.status
        headers = [(k, v) for k, v in upstream.headers if k.lower() not in _RESP_DROP]
        length = upstream.content_length
        if not upstream.content_type.startswith("text/event-stream") and length is not None and length <= _SMALL:
            raw = await self._read(ex, upstream)
            if not isinstance(raw, bytes):  # a 502 (not `isinstance(.., web.Response)`: that goes through abc)
                return raw
            ex.bytes_out = len(raw)
            return web.Response(status=upstream.status, body=raw, headers=headers)
        return await self._stream(request, ex, upstream, headers, upstream.iter_any())

    async def _relay_filtered(self, request: web.Request, ex: Exchange, upstream: _Answer) -> web.StreamResponse:
        """Relay an answer with every list result filtered per caller (sidecar/streams.py has the rule)."""
        ex.status = upstream.status
        encoding = ",".join(v for k, v in upstream.headers if k.lower() == "content-encoding")
        headers = [(k, v) for k, v in upstream.headers if k.lower() not in _RESP_DROP_DECODED]
        ctype = upstream.content_type
        visible = self._visible(ex)
        if ctype.startswith("text/event-stream"):
            chunks = upstream.iter_any()
            if codings(encoding):
                chunks = decode_stream(chunks, encoding, _MAX_STREAM)
            events = _filtered_events(chunks, visible, self.state.pins)
            return await self._stream(request, ex, upstream, headers, events)
        raw = await self._read(ex, upstream)
        if not isinstance(raw, bytes):
            return raw
        if codings(encoding):
            try:
                raw = decode_body(raw, encoding, _MAX_STREAM)
            except EncodingError as exc:
                return deny.unfilterable(ex, str(exc))
        strict = request.method in gate.BODY_VERBS  # the body asked for a list: the answer must be one we read
        if raw.strip() and ("json" in ctype or strict):
            try:
                raw = filter_json_body(raw, visible)
            except Unfilterable as exc:
                return deny.unfilterable(ex, str(exc))
        ex.bytes_out = len(raw)
        return web.Response(status=upstream.status, body=raw, headers=headers)
