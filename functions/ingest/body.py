"""Reading a request body under a size limit, so that an over-limit client still reads its 413.

Answering before the client has finished sending and then closing leaves its unsent bytes in
flight and unread ones in our receive buffer; the kernel resets the connection and most clients
(urllib, requests, aiohttp mid-upload) report a broken pipe or a reset instead of the 413 - the
sidecar's audit sender needs that 413 to split a batch. So past the limit the rest of the body is
read and thrown away, up to `DISCARD_BYTES` and `DISCARD_SECONDS` (bounded work per refused
request), and the 413 then says `Connection: close`. A client that declares more than the
discard bound is answered at once without reading anything (it may see a reset; nothing else is
possible without reading a gigabyte).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

DISCARD_BYTES = 16 * 1024 * 1024
DISCARD_SECONDS = 5.0
CLOSE = {"Connection": "close"}  # headers of a refusal sent before the body was fully read


async def _discard(stream: AsyncIterator[bytes], budget: int, seconds: float) -> None:
    with contextlib.suppress(TimeoutError, ClientDisconnect):
        async with asyncio.timeout(seconds):
            async for chunk in stream:
                budget -= len(chunk)
                if budget < 0:
                    return


async def read_limited(request: Request, limit: int, *, discard_bytes: int = DISCARD_BYTES,
                       discard_seconds: float = DISCARD_SECONDS) -> bytes | None:
    """The body, or None when it exceeds `limit` (after discarding what a client may still send)."""
    declared = request.headers.get("content-length")
    stream = request.stream()
    if declared and declared.isdigit() and int(declared) > limit:
        if int(declared) <= discard_bytes:
            await _discard(stream, discard_bytes, discard_seconds)
        return None
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            await _discard(stream, discard_bytes - size, discard_seconds)
            return None
        chunks.append(chunk)
    return b"".join(chunks)
