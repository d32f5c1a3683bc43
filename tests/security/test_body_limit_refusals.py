"""Over-limit bodies get a 413 the client actually reads, from ingest and from the sidecar (issue 17, item 4).

A server that answers early and closes while the client is still sending leaves unread bytes in
its receive buffer; the kernel then resets the connection, and the client sees a broken pipe or a
reset instead of the 413 (the sidecar's audit sender relied on reading that 413 to split a batch).
Each client below sends a body several socket buffers past the limit, through real processes on
loopback: raw sockets (declared length, chunked, and a declared length far past the discard bound),
urllib, httpx and aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest

from localstack.config import Ports, StackConfig
from localstack.parts import ingest as ingest_part
from localstack.parts import sample_mcp, sidecars
from localstack.supervisor import Supervisor

LIMIT = 1024 * 1024  # both defaults (functions/ingest/settings.py, sidecar/settings.py)
OVER = 4 * LIMIT  # far more than loopback socket buffers hold: an early close would reset the sender


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    path: str
    headers: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    """Ingest (its broker absent: a 413 is decided before any produce) and the server-a sidecar."""
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("refusals"), ports=Ports.free())
    with Supervisor(cfg) as sup:
        sup.start_all([*ingest_part.components(cfg), *sample_mcp.components(cfg), *sidecars.components(cfg)])
        yield cfg


def _targets(cfg: StackConfig) -> list[Target]:
    mcp = {"X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "workspace-agent", "X-MCP-Agent-Session": "sess-alice-a",
           "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "search",
           "Accept": "application/json, text/event-stream"}
    return [
        Target("ingest", cfg.host, cfg.ports.ingest, "/events",
               {"x-api-key": cfg.ingest_api_key, "Content-Type": "application/cloudevents-batch+json"}),
        Target("sidecar", cfg.host, cfg.ports.sidecar_a, "/mcp", {**mcp, "Content-Type": "application/json"}),
    ]


def _body(size: int = OVER) -> bytes:
    """Valid JSON of `size` bytes (what a real oversized batch or tool call looks like)."""
    head, tail = b'[{"pad":"', b'"}]'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _read_status(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    sock.settimeout(20)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status_line = data.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), data


def _raw(target: Target, body: bytes, *, chunked: bool = False, declared: int | None = None) -> tuple[int, bytes]:
    """Send the whole request (ignoring an early answer), then read the status line."""
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    lines += [f"{k}: {v}" for k, v in target.headers.items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {declared or len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((target.host, target.port), timeout=20) as sock:
        sock.sendall(head)
        step = 64 * 1024
        for i in range(0, len(body), step):
            piece = body[i:i + step]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        return _read_status(sock)


@pytest.mark.parametrize("which", ["ingest", "sidecar"])
def test_raw_socket_with_content_length_reads_the_413(stack: StackConfig, which: str) -> None:
    target = next(t for t in _targets(stack) if t.name == which)
    status, _ = _raw(target, _body())
    assert status == 413


@pytest.mark.parametrize("which", ["ingest", "sidecar"])
def test_raw_socket_chunked_reads_the_413(stack: StackConfig, which: str) -> None:
    target = next(t for t in _targets(stack) if t.name == which)
    status, _ = _raw(target, _body(), chunked=True)
    assert status == 413


@pytest.mark.parametrize("which", ["ingest", "sidecar"])
def test_declared_length_far_past_the_bound_is_answered_first(stack: StackConfig, which: str) -> None:
    """A client declaring 1 GiB gets its 413 before sending any body (nothing is read or buffered)."""
    target = next(t for t in _targets(stack) if t.name == which)
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host}", "Content-Length: 1073741824"]
    lines += [f"{k}: {v}" for k, v in target.headers.items()]
    with socket.create_connection((target.host, target.port), timeout=20) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, data = _read_status(sock)
    assert status == 413
    assert b"connection: close" in data.lower()


@pytest.mark.parametrize("which", ["ingest", "sidecar"])
def test_urllib_reads_the_413(stack: StackConfig, which: str) -> None:
    target = next(t for t in _targets(stack) if t.name == which)
    req = urllib.request.Request(target.url, data=_body(), headers=target.headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=20)
    assert err.value.code == 413
    doc = json.loads(err.value.read())
    assert "too_large" in json.dumps(doc)


@pytest.mark.parametrize("which", ["ingest", "sidecar"])
def test_httpx_reads_the_413(stack: StackConfig, which: str) -> None:
    target = next(t for t in _targets(stack) if t.name == which)
    with httpx.Client(timeout=20) as client:
        for _ in range(3):  # keep-alive reuse must not turn the next attempt into a reset either
            r = client.post(target.url, content=_body(), headers=target.headers)
            assert r.status_code == 413, r.text
            assert "too_large" in r.text


@pytest.mark.parametrize("which", ["ingest", "sidecar"])
def test_aiohttp_reads_the_413(stack: StackConfig, which: str) -> None:
    target = next(t for t in _targets(stack) if t.name == which)

    async def go() -> list[int]:
        statuses = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            for _ in range(3):
                async with session.post(target.url, data=_body(), headers=target.headers) as resp:
                    await resp.read()
                    statuses.append(resp.status)
        return statuses

    assert asyncio.run(go()) == [413, 413, 413]


@pytest.mark.parametrize("which", ["ingest", "sidecar"])
def test_a_body_within_the_limit_still_works_after_refusals(stack: StackConfig, which: str, tmp_path: Path) -> None:
    """The refusal path leaves the server serving: a normal request right after is answered normally."""
    target = next(t for t in _targets(stack) if t.name == which)
    _raw(target, _body())
    r = httpx.post(target.url, content=b"[]" if which == "ingest" else b"{}", headers=target.headers, timeout=20)
    assert r.status_code in (400, 202, 200), r.text  # decided on content, not refused for size
