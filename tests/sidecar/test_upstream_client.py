"""The pooled hot-path upstream client against scripted HTTP/1.1 servers on real sockets.

Each server reads one request at a time and answers with exactly the bytes a test scripts, so
framing cases (chunked, close-delimited, 1xx, early close, garbage) are reproduced byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sidecar.upstream import UpstreamError, UpstreamPool, header_block

Script = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # returns False to close the connection


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


class Scripted:
    """A real TCP server answering each request with `script(request_bytes, writer)`."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    req = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(req)
                keep = await self.script(req, writer)
                await writer.drain()
                if not keep:
                    return
        finally:
            writer.close()

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


async def _pool(srv: Scripted) -> AsyncIterator[UpstreamPool]:
    pool = UpstreamPool("127.0.0.1", srv.port, host_header=f"127.0.0.1:{srv.port}")
    try:
        yield pool
    finally:
        await pool.close()


async def _get(pool: UpstreamPool, body: bytes | None = b'{"a":1}', method: str = "POST") -> tuple[int, bytes]:
    resp = await pool.request(method, "/mcp?x=1", header_block([("Content-Type", "application/json")]), body)
    try:
        return resp.status, await resp.read()
    finally:
        resp.release()


async def test_keep_alive_reuse_and_byte_exact_request() -> None:
    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(_ok(b'{"r":1}'))
        return True

    body = b'{ "jsonrpc" : "2.0",\n "id":1 , "method":"ping" }'
    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            for _ in range(3):
                assert await _get(pool, body) == (200, b'{"r":1}')
            assert pool.connects == 1 and srv.connections == 1
    req = srv.requests[0]
    assert req.startswith(b"POST /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Type: application/json\r\n" in req
    assert req.endswith(b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def test_chunked_body_streams_before_it_ends() -> None:
    release = asyncio.Event()

    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        w.write(b"6\r\ndata:1\r\n")
        await w.drain()
        await release.wait()
        w.write(b"8\r\ndata:two\r\n0\r\n\r\n")
        return True

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            resp = await pool.request("GET", "/mcp", b"", None)
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            chunks = resp.iter_any()
            assert await asyncio.wait_for(chunks.__anext__(), 10) == b"data:1"  # before the rest was sent
            release.set()
            rest = [c async for c in chunks]
            assert b"".join(rest) == b"data:two"
            resp.release()
            assert (await _get(pool, None, "GET"))[0] == 200
            assert pool.connects == 1  # a fully read chunked body leaves the connection reusable
    assert srv.requests[0].startswith(b"GET /mcp HTTP/1.1\r\n") and b"Content-Length" not in srv.requests[0]


async def test_close_delimited_body_and_connection_close_are_not_reused() -> None:
    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        if b"/mcp?x=1" in req and len(srv.requests) == 1:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"no":"length"}')
            return False  # the body ends with the connection
        w.write(_ok(b"{}", b"Connection: close\r\n"))
        return False

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            assert await _get(pool) == (200, b'{"no":"length"}')
            assert await _get(pool) == (200, b"{}")
            assert await _get(pool) == (200, b"{}")
            assert pool.connects == 3


async def test_interim_1xx_answers_are_skipped() -> None:
    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n")
        w.write(_ok(b'{"final":true}', b"X-Up: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"))
        return True

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            resp = await pool.request("POST", "/", b"", b"{}")
            assert resp.status == 200 and await resp.read() == b'{"final":true}'
            names = [n.lower() for n, _v in resp.headers]
            assert "link" not in names and "x-up" in names
            assert [v for n, v in resp.headers if n.lower() == "set-cookie"] == ["a=1", "b=2"]  # repeats kept
            resp.release()


async def test_no_content_answer_keeps_connection() -> None:
    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            assert await _get(pool) == (204, b"")
            assert await _get(pool) == (204, b"")
            assert pool.connects == 1


async def test_unreachable_and_silent_close_raise_upstream_error() -> None:
    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        return False  # read the request, answer nothing, close

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            with pytest.raises(UpstreamError, match="closed the connection"):
                await _get(pool)
        port = srv.port
    pool = UpstreamPool("127.0.0.1", port, host_header="x")
    with pytest.raises(UpstreamError, match="cannot connect"):
        await _get(pool)


async def test_early_close_mid_body_is_an_error_not_a_short_body() -> None:
    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        return False

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            resp = await pool.request("POST", "/", b"", b"{}")
            with pytest.raises(UpstreamError):
                await resp.read()
            resp.release()
            resp = await pool.request("GET", "/", b"", None)
            with pytest.raises(UpstreamError):
                _ = [c async for c in resp.iter_any()]
            resp.release()


async def test_malformed_and_upgrade_answers_raise_upstream_error() -> None:
    answers = [b"HTTP/1.1 abc nonsense\r\n\r\n", b"HTTP/1.1 101 Switching\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"]

    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(answers[len(srv.requests) - 1])
        return True

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            for expected in ("malformed", "switched protocols"):
                with pytest.raises(UpstreamError, match=expected):
                    await _get(pool)


async def test_large_stream_with_back_pressure_arrives_intact() -> None:
    payload = bytes(range(256)) * (16 * 1024)  # 4 MiB, far above the pause threshold

    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload))
        for i in range(0, len(payload), 65536):
            w.write(payload[i : i + 65536])
            await w.drain()
        return True

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            resp = await pool.request("GET", "/big", b"", None)
            digest = hashlib.sha256()
            paused = False
            async for chunk in resp.iter_any():
                digest.update(chunk)
                paused = paused or resp._paused
                await asyncio.sleep(0.001)  # a slow reader: the socket must be paused, not buffered without end
            resp.release()
            assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
            assert paused, "the upstream socket was never paused for the slow reader"
            status, again = await _get(pool, None, "GET")
            assert status == 200 and again == payload
            assert pool.connects == 1


async def test_idle_connection_closed_by_upstream_is_not_reused() -> None:
    async def script(req: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(_ok(b"{}"))  # keep-alive framing, but the server closes afterwards (its idle timeout)
        return False

    async with Scripted(script) as srv:
        async for pool in _pool(srv):
            assert await _get(pool) == (200, b"{}")
            for _ in range(200):
                if not pool._idle or pool._idle[0].closed:
                    break
                await asyncio.sleep(0.01)
            assert await _get(pool) == (200, b"{}")
            assert pool.connects == 2


def test_header_block_refuses_line_breaks() -> None:
    assert header_block([("A", "1"), ("B", "two words")]) == b"A: 1\r\nB: two words\r\n"
    for bad in ("x\r\nX-Evil: 1", "x\nX-Evil: 1", "x\rY", "x\0"):
        with pytest.raises(ValueError, match="line break or NUL"):
            header_block([("X-MCP-Human-ID", bad)])


def test_event_encoder_matches_the_codec_structured_encoding_and_ids_are_unique_v4() -> None:
    """One CloudEvents layout: the sidecar's spool line is byte-equal to the codec's `to_structured`."""
    import json
    import re

    from mcp_sentinel.cloudevents_codec import to_structured
    from mcp_sentinel.cloudevents_line import EventEncoder
    from mcp_sentinel.envelope import new_envelope, parse_timestamp

    enc = EventEncoder(source="server-a-gateway", event_type="mcp.request")
    payload = {"status": 200, "human_id": "zoë", "rpc_id": 'x"y', "tool_name": "search"}
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    line = enc.line(payload, tp)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    got = json.loads(line)
    env = new_envelope("server-a-gateway", "mcp.request", payload, timestamp=parse_timestamp(got["time"]),
                       event_id=got["id"])
    want = json.dumps(to_structured(env, traceparent=tp), separators=(",", ":"), ensure_ascii=False).encode()
    assert line == want + b"\n"
    bare = enc.line(payload, event_id=got["id"])
    assert "traceparent" not in json.loads(bare)
    t2 = json.loads(bare)["time"]
    env2 = new_envelope("server-a-gateway", "mcp.request", payload, timestamp=parse_timestamp(t2), event_id=got["id"])
    assert bare == json.dumps(to_structured(env2), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", got["time"])
    assert "traceparent" not in json.loads(enc.line(payload))
    ids = {enc.new_id() for _ in range(2000)}  # crosses several random-buffer refills
    assert len(ids) == 2000
    v4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(v4.fullmatch(i) for i in ids)
