"""A small pooled HTTP/1.1 client for the hot path: asyncio Protocol + the `httptools` response parser.

aiohttp's client spent about half of the sidecar's CPU per proxied call (request objects, header
multidicts, timers, tracing hooks). This client does only what the proxy needs: send one request
with a fully known body (or none) on a kept-alive loopback/cluster connection, and hand back the
status, raw headers and the body — whole, or chunk by chunk with back-pressure for streams (SSE).
Content-Length, chunked and close-delimited bodies, 1xx interim answers and `Connection: close`
are handled; HEAD and streamed request bodies stay on aiohttp (the caller decides).

Deliberately no retry: a request that failed on a reused connection may already have run a tool
on the upstream, so it is never re-sent. Idle connections are dropped after `idle_timeout`
(shorter than common upstream keep-alive timeouts, e.g. uvicorn's 5 s) to keep that race rare.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools

from sidecar.errors import UpstreamError as UpstreamError  # re-exported: raised here

_HIGH_WATER = 256 * 1024  # pause reading the upstream socket above this many unread body bytes
_LOW_WATER = 64 * 1024


class _Conn(asyncio.Protocol):
    """One upstream connection; carries at most one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.resp: UpstreamResponse | None = None
        self._header_name = b""

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement its interface.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.resp is None:
            self.close()  # bytes nobody asked for: the connection's framing can no longer be trusted
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamError("upstream switched protocols; not supported by the proxy"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed upstream response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        resp = self.resp
        if resp is not None and not resp.complete:
            if resp.headers_done and resp.close_delimited:
                resp._finish()  # a body without length ends with the connection
            else:
                resp._fail(UpstreamError("upstream closed the connection mid-response"))

    def pause_writing(self) -> None:  # request bodies are small; nothing to throttle
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        resp = self.resp
        if resp is not None and not resp.headers_done:
            resp.raw_headers.clear()  # after a 1xx interim answer

    def on_header(self, name: bytes, value: bytes) -> None:
        resp = self.resp
        if resp is not None:
            resp.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        resp = self.resp
        if resp is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # interim (100 Continue, 103 Early Hints): wait for the final answer
        resp._headers_complete(status, self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        resp = self.resp
        if resp is not None:
            resp._feed(body)

    def on_message_complete(self) -> None:
        resp = self.resp
        if resp is None or not resp.headers_done:
            return  # end of a 1xx interim message
        resp._finish()

    # -- helpers ---------------------------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        if self.resp is not None and not self.resp.complete:
            self.resp._fail(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    """An upstream answer: status and raw headers first, the body whole or as a stream."""

    def __init__(self, conn: _Conn, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._loop = loop
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.close_delimited = False
        self.content_length: int | None = None
        self.content_type = ""
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._whole = False
        self._error: Exception | None = None
        self._headers_fut: asyncio.Future[None] = loop.create_future()
        self._waiter: asyncio.Future[None] | None = None
        self._released = False

    # -- fed by the protocol -------------------------------------------------------------------

    def _headers_complete(self, status: int, keep_alive: bool) -> None:
        self.status = status
        self.keep_alive = keep_alive
        chunked = False
        for name, value in self.raw_headers:
            n = name.lower()
            if n == b"content-length":
                try:
                    self.content_length = int(value)
                except ValueError:
                    self.content_length = None
            elif n == b"content-type":
                self.content_type = value.decode("latin-1").lower()
            elif n == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        no_body = status in (204, 304)
        self.close_delimited = not no_body and not chunked and self.content_length is None
        self.headers_done = True
        if not self._headers_fut.done():
            self._headers_fut.set_result(None)

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._paused and not self._whole and self._conn.transport is not None:
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    def _finish(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, exc: Exception) -> None:
        self._error = exc
        self.complete = True
        self.keep_alive = False
        if not self._headers_fut.done():
            self._headers_fut.set_exception(exc)
            self._headers_fut.exception()  # retrieved here; the caller sees it via `wait_headers`
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- consumer side -------------------------------------------------------------------------

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Response headers, in order, repeated names kept (decoded as aiohttp does)."""
        return [
            (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for n, v in self.raw_headers
        ]

    async def wait_headers(self) -> None:
        """Until the final (non-1xx) status line and headers arrived; raises `UpstreamError`."""
        await self._headers_fut

    async def _more(self) -> None:
        if self._paused and self._buffered <= _LOW_WATER and self._conn.transport is not None:
            self._paused = False
            self._conn.transport.resume_reading()
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read(self) -> bytes:
        """The whole body (for small, non-streaming answers)."""
        self._whole = True  # the caller wants everything: no back-pressure pause
        if self._paused and self._conn.transport is not None:
            self._paused = False
            self._conn.transport.resume_reading()
        while not self.complete:
            await self._more()
        if self._error is not None:
            raise self._error
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    async def iter_any(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (at most one wake-up per network read); raises on an early close."""
        while True:
            if self._chunks:
                data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
                self._chunks.clear()
                self._buffered = 0
                yield data
                continue
            if self.complete:
                if self._error is not None:
                    raise self._error
                return
            await self._more()

    def release(self) -> None:
        """Hand the connection back (kept alive only when the body was fully read and reuse is allowed)."""
        if self._released:
            return
        self._released = True
        if self.complete:
            self._conn.pool._done(self._conn, self)
        else:
            self._conn.close()  # abandoned mid-body: the connection's framing is unknown now


class UpstreamPool:
    """Kept-alive connections to one upstream `host:port` (plain HTTP)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        host_header: str,
        connect_timeout: float = 5.0,
        idle_timeout: float = 4.0,
        max_idle: int = 256,
    ) -> None:
        self.host = host
        self.port = port
        self.host_header = host_header
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        self._all: set[_Conn] = set()
        self.connects = 0  # connections opened (exposed for tests: keep-alive reuse is observable)

    async def _acquire(self) -> _Conn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _t, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.connects += 1
        self._all.add(conn)
        return conn

    async def request(self, method: str, target: str, head: bytes, body: bytes | None) -> UpstreamResponse:
        """Send `method target` with the pre-encoded header block `head` and `body`; return once headers arrive.

        `head` holds `Name: value\\r\\n` lines without Host/Content-Length (added here).
        """
        conn = await self._acquire()
        resp = UpstreamResponse(conn, asyncio.get_running_loop())
        conn.resp = resp
        conn.parser = httptools.HttpResponseParser(conn)
        start = f"{method} {target} HTTP/1.1\r\nHost: {self.host_header}\r\n".encode("utf-8", "surrogateescape")
        if body is not None:
            tail = b"Content-Length: %d\r\n\r\n" % len(body)
            msg = b"".join((start, head, tail, body))
        else:
            msg = b"".join((start, head, b"\r\n"))
        assert conn.transport is not None
        conn.transport.write(msg)
        try:
            await resp.wait_headers()
        except BaseException:
            conn.close()
            raise
        return resp

    def _done(self, conn: _Conn, resp: UpstreamResponse) -> None:
        if conn.resp is not resp:
            return
        conn.resp = None
        if conn.closed or not resp.keep_alive or resp.close_delimited or len(self._idle) >= self.max_idle:
            conn.close()
            return
        if resp._paused and conn.transport is not None:
            conn.transport.resume_reading()
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def _forget(self, conn: _Conn) -> None:
        self._all.discard(conn)

    async def close(self) -> None:
        """Close every connection."""
        for conn in list(self._all):
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)


def header_block(headers: Any) -> bytes:
    """Encode `(name, value)` pairs as HTTP/1.1 header lines; refuses CR/LF/NUL (header injection)."""
    out = []
    for name, value in headers:
        line = f"{name}: {value}\r\n"
        if line.count("\n") != 1 or line.count("\r") != 1 or "\0" in line:
            raise ValueError(f"header {name!r} contains a line break or NUL")
        out.append(line)
    return "".join(out).encode("utf-8", "surrogateescape")
