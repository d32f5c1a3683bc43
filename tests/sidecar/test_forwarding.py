"""What reaches the upstream, and what a broken upstream answer becomes, through a real sidecar process.

Both upstream clients (`UPSTREAM_CLIENT=fast`, the pooled httptools client, and `aiohttp`) must
forward the same request and turn the same failures into the same JSON-RPC errors.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from localstack.config import Ports
from tests.fixtures.sidecar import ALICE, SidecarProcess

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "server-a.json"


class _Handler(socketserver.BaseRequestHandler):
    """A raw HTTP/1.1 upstream: the request path picks the (mis)behaviour."""

    server: _Upstream

    def handle(self) -> None:
        sock: socket.socket = self.request
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if b"transfer-encoding: chunked" in head.lower():
                while b"0\r\n\r\n" not in rest:
                    rest += sock.recv(65536)
                raw, _, buf = rest.partition(b"0\r\n\r\n")
                body = b""
                while raw:
                    size, _, raw = raw.partition(b"\r\n")
                    body += raw[: int(size, 16)]
                    raw = raw[int(size, 16) + 2 :]
            else:
                while len(rest) < length:
                    rest += sock.recv(65536)
                body, buf = rest[:length], rest[length:]
            self.server.seen.append((head, body))
            target = head.split(b" ")[1]
            if target.startswith(b"/drop"):
                return  # close without an answer
            if target.startswith(b"/cut"):
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
                return
            reply = b'{"jsonrpc":"2.0","id":1,"result":{}}'
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Up: a\r\nX-Up: b\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply)
            )


class _Upstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.seen: list[tuple[bytes, bytes]] = []


@pytest.fixture(scope="module", params=["fast", "aiohttp"])
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, _Upstream]]:
    tmp = tmp_path_factory.mktemp(f"fwd-{request.param}")
    ports = Ports.free()
    upstream = _Upstream(ports.sample_mcp)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    policy = tmp / "server-a.json"
    policy.write_bytes(POLICY.read_bytes())
    sc = SidecarProcess(
        {
            "PORT": str(ports.sidecar_a),
            "METRICS_PORT": str(ports.sidecar_a_metrics),
            "LISTEN_HOST": "127.0.0.1",
            "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
            "POLICY_FILE": str(policy),
            "AUDIT_SPOOL_DIR": str(tmp / "spool"),
            "UPSTREAM_CLIENT": request.param,
        },
        tmp / "sc.log",
    )
    try:
        yield ports.sidecar_a, upstream
    finally:
        sc.stop()
        upstream.shutdown()
        upstream.server_close()


def _call(port: int, path: str, body: bytes, headers: list[tuple[str, str]]) -> httpx2.Response:
    return httpx2.post(f"http://127.0.0.1:{port}{path}", content=body, headers=headers, timeout=30)


TOOL = b'{ "jsonrpc":"2.0", "id":7,\n  "method":"tools/call","params":{"name":"search","arguments":{"q":"\\u00e9"}} }'
BASE = [("Content-Type", "application/json"), *ALICE.items()]


def test_forwarded_request_is_exact_and_owned_headers_are_not_duplicated(rig: tuple[int, _Upstream]) -> None:
    port, upstream = rig
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    spoof = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "gopher"),
        ("traceparent", tp),
        ("Authorization", "Bearer client-secret"),
        ("Accept", "application/json"),
        ("Accept", "text/event-stream"),
    ]
    n = len(upstream.seen)
    r = _call(port, "/mcp?q=1", TOOL, [*BASE, *spoof])
    assert r.status_code == 200, r.text
    assert r.headers.get_list("x-up") == ["a", "b"]  # repeated response headers survive
    head, body = upstream.seen[n]
    assert body == TOOL  # byte-exact
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /mcp?q=1 HTTP/1.1"
    hdrs = [(k.strip().lower(), v.strip()) for k, _, v in (ln.partition(b":") for ln in lines[1:])]
    by = {k: [v for kk, v in hdrs if kk == k] for k, _v in hdrs}
    assert by[b"host"] == [f"127.0.0.1:{upstream.server_address[1]}".encode()]
    assert by[b"x-forwarded-for"] == [b"6.6.6.6, 127.0.0.1"]  # chain extended once, not repeated
    assert by[b"x-forwarded-host"] == [f"127.0.0.1:{port}".encode()]
    assert by[b"x-forwarded-proto"] == [b"http"]
    assert len(by[b"traceparent"]) == 1 and by[b"traceparent"][0].startswith(b"00-0af7651916cd43dd8448eb211c80319c-")
    assert by[b"traceparent"][0] != tp.encode()  # our hop's span id
    assert b"authorization" not in by
    assert by[b"x-mcp-human-id"] == [b"alice"] and by[b"x-mcp-agent-session"] == [b"sess-alice-a"]
    assert sorted(by[b"accept"]) == [b"application/json", b"text/event-stream"]
    assert by[b"content-length"] == [str(len(TOOL)).encode()]


@pytest.mark.parametrize("path", ["/drop", "/cut"])
def test_broken_upstream_answer_is_502_jsonrpc(rig: tuple[int, _Upstream], path: str) -> None:
    port, _upstream = rig
    r = _call(port, path, TOOL, BASE)
    assert r.status_code == 502, r.text
    out = r.json()
    assert out["id"] == 7 and out["error"]["code"] == -32005
    assert out["error"]["data"]["reason"] == "upstream_unavailable"
    # The sidecar is fine afterwards and keeps serving.
    assert _call(port, "/mcp", TOOL, BASE).status_code == 200
    status = httpx2.get(f"http://127.0.0.1:{port}/.sentinel/config/status", timeout=10).json()
    assert status["audit"]["spool_depth"] >= 2  # the failed exchange was audited too


def test_streamed_request_body_is_inspected_and_proxied(rig: tuple[int, _Upstream]) -> None:
    port, upstream = rig
    n = len(upstream.seen)

    def gen() -> Iterator[bytes]:
        yield TOOL[:20]
        yield TOOL[20:]

    # A chunked POST body is read whole, inspected, decided and forwarded byte-exact.
    r = httpx2.post(f"http://127.0.0.1:{port}/mcp", content=gen(), headers=BASE, timeout=30)
    assert r.status_code == 200, r.text
    assert upstream.seen[n][1] == TOOL


def test_streamed_body_on_a_bodyless_verb_is_refused(rig: tuple[int, _Upstream]) -> None:
    # Issue 13: a DELETE carrying a (chunked) JSON-RPC body was streamed to the upstream uninspected.
    port, upstream = rig
    n = len(upstream.seen)

    def gen() -> Iterator[bytes]:
        yield TOOL[:20]
        yield TOOL[20:]

    r = httpx2.request("DELETE", f"http://127.0.0.1:{port}/mcp", content=gen(), headers=BASE, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["data"]["reason"] == "body_not_allowed"
    assert len(upstream.seen) == n
