"""Response rewriting for `tools/list`: drop tools the caller could not call (§11.14), and mark
a 2026-07-28 result (one that carries `ttlMs`/`cacheScope`) `cacheScope: "private"`.

JSON bodies are rewritten whole; SSE streams are split into events (blank-line delimited) and
only `data:` payloads answering a `tools/list` request are rewritten — every other event passes
through byte-for-byte, as soon as it is complete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

_MAX_EVENT = 16 * 1024 * 1024


def _filter_message(msg: Any, ids: set[str], visible: Callable[[str], bool]) -> bool:
    if not isinstance(msg, dict) or json.dumps(msg.get("id")) not in ids:
        return False
    result = msg.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return False
    result["tools"] = [t for t in result["tools"] if isinstance(t, dict) and visible(str(t.get("name", "")))]
    if "cacheScope" in result or "ttlMs" in result:
        # MCP 2026-07-28 (SEP-2549): shared intermediaries may cache `public` results; this list is
        # now per caller, so it must not be served to anyone else from a cache.
        result["cacheScope"] = "private"
    return True


def filter_json_body(raw: bytes, ids: set[str], visible: Callable[[str], bool]) -> bytes:
    """Rewrite a JSON (single or batch) response; unparseable bodies pass through unchanged."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw
    msgs = doc if isinstance(doc, list) else [doc]
    changed = False
    for m in msgs:
        changed = _filter_message(m, ids, visible) or changed
    return json.dumps(doc, separators=(",", ":")).encode() if changed else raw


def filter_sse_event(event: bytes, ids: set[str], visible: Callable[[str], bool]) -> bytes:
    """Rewrite one complete SSE event (including its terminating blank line) if it answers tools/list."""
    lines = event.split(b"\n")
    data_idx = [i for i, ln in enumerate(lines) if ln.startswith(b"data:")]
    if not data_idx:
        return event
    payload = b"\n".join(lines[i][5:].removeprefix(b" ") for i in data_idx)
    try:
        msg = json.loads(payload)
    except ValueError:
        return event
    if not _filter_message(msg, ids, visible):
        return event
    new_data = b"data: " + json.dumps(msg, separators=(",", ":")).encode()
    out = [ln for i, ln in enumerate(lines) if i not in data_idx[1:]]
    out[data_idx[0]] = new_data
    return b"\n".join(out)


async def iter_sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield complete SSE events (each ending in its blank line) as soon as they arrive."""
    buf = b""
    async for chunk in chunks:
        buf += chunk.replace(b"\r\n", b"\n")
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            yield buf[: end + 2]
            buf = buf[end + 2 :]
        if len(buf) > _MAX_EVENT:
            yield buf  # pathological event: stop buffering, pass it through
            buf = b""
    if buf:
        yield buf
