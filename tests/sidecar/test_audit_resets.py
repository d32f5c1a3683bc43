"""The audit sender splits a batch a server answers by resetting the connection (issue 17, item 4).

Some servers and proxies refuse an oversized body by closing the connection without reading it;
the sender then sees a reset or a disconnect, never a 413. Resending the same batch would be
refused forever (the sidecar's spool would stop draining while calls keep being audited into it),
so a reset on a batch is treated as "too big: split it". The receiver here is a real TCP server that
RSTs (SO_LINGER 0) every request whose declared body exceeds a threshold and accepts the rest.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import Counter
from pathlib import Path
from typing import Any

from localstack.config import Ports

RESET_OVER = 6 * 1024  # bytes of body; an event below is ~400 bytes, so batches over ~15 events are reset


class ResettingIngest:
    """HTTP/1.1 on a raw asyncio server: bodies over `limit` get a TCP reset, the rest a 202."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received: list[dict[str, Any]] = []
        self.resets = 0
        self.largest_accepted = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length > self.limit:
                    self.resets += 1
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()  # RST, with the body unread
                    return
                body = await reader.readexactly(length)
                batch = json.loads(body)
                self.received.extend(batch)
                self.largest_accepted = max(self.largest_accepted, len(batch))
                answer = b'{"ok":true}'
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def test_reset_batches_are_split_until_they_pass_and_nothing_is_lost(tmp_path: Path) -> None:
    from mcp_sentinel.cloudevents_line import EventEncoder
    from sidecar.audit import AuditSender, AuditSpool

    ingest = ResettingIngest(RESET_OVER)
    port = Ports.free().ingest
    server = await asyncio.start_server(ingest.handle, "127.0.0.1", port)
    spool = AuditSpool(tmp_path)
    for n in range(200):
        assert spool.append_line(EventEncoder(source="s", event_type="t").line({"n": n, "pad": "p" * 200}))
    sender = AuditSender(spool, f"http://127.0.0.1:{port}/events", batch_size=64)
    task = asyncio.create_task(sender.run())
    try:
        for _ in range(300):  # 15 s: the old sender resent the 64-event batch forever
            if spool.counters.depth == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
        await server.wait_closed()
    got = Counter(e["data"]["n"] for e in ingest.received)
    assert sorted(got) == list(range(200)) and max(got.values()) == 1, (len(got), spool.counters)
    assert spool.counters.sent == 200 and spool.counters.quarantined == 0 and spool.counters.depth == 0
    assert ingest.resets >= 1  # the reset path was exercised, not avoided
    assert 1 < ingest.largest_accepted <= 16  # split to what fits, not down to single events forever


async def test_a_single_event_reset_is_retried_not_quarantined(tmp_path: Path) -> None:
    """One event that is reset is an outage, not a verdict: it stays in the spool and is retried."""
    from mcp_sentinel.cloudevents_line import EventEncoder
    from sidecar.audit import AuditSender, AuditSpool

    ingest = ResettingIngest(10)  # resets everything
    port = Ports.free().ingest
    server = await asyncio.start_server(ingest.handle, "127.0.0.1", port)
    spool = AuditSpool(tmp_path)
    assert spool.append_line(EventEncoder(source="s", event_type="t").line({"n": 0}))
    sender = AuditSender(spool, f"http://127.0.0.1:{port}/events", batch_size=64)
    task = asyncio.create_task(sender.run())
    try:
        await asyncio.sleep(1.5)
        assert ingest.resets >= 2 and spool.counters.depth == 1 and spool.counters.quarantined == 0
        ingest.limit = 1 << 20  # the outage ends: the same event goes through
        for _ in range(200):
            if spool.counters.depth == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
        await server.wait_closed()
    assert [e["data"]["n"] for e in ingest.received] == [0] and spool.counters.sent == 1
