"""Per-caller filtering of list results: `tools`, `prompts`, `resources` and `resourceTemplates`.

The rule is by shape, not by request id: every JSON-RPC result object that carries one of those
arrays keeps only the entries the caller may use (§11.14), wherever it appears in an answer the
gateway filters — the answer to a POST with a list request, or any GET stream (which can replay
answers to earlier list requests after `Last-Event-ID`, or carry anything the server sends).
A filtered 2026-07-28 result (one with `ttlMs`/`cacheScope`) is marked `cacheScope: "private"`.

JSON bodies are rewritten whole; SSE streams are split into events (blank-line delimited) and
rewritten one by one as soon as each is complete. What cannot be parsed is never passed on:
`filter_json_body` raises `Unfilterable`, `filter_sse_event` drops the event, and an event over
the size limit ends the stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

from mcp_sentinel.policy.evaluate import LIST_KEYS
from sidecar.errors import Unfilterable as Unfilterable  # re-exported: raised here

_MAX_EVENT = 16 * 1024 * 1024

Visible = Callable[[str, Mapping[str, Any]], bool]


def _filter_result(result: dict[str, Any], visible: Visible) -> bool:
    changed = False
    for key in LIST_KEYS:
        if key not in result:
            continue
        items = result[key]
        # Not a list: nothing a client can safely read, so nothing is shown.
        result[key] = [i for i in items if isinstance(i, dict) and visible(key, i)] if isinstance(items, list) else []
        changed = True
    if changed and ("cacheScope" in result or "ttlMs" in result):
        # MCP 2026-07-28 (SEP-2549): shared intermediaries may cache `public` results; this list is
        # now per caller, so it must not be served to anyone else from a cache.
        result["cacheScope"] = "private"
    return changed


def _filter_doc(doc: Any, visible: Visible) -> bool:
    changed = False
    for msg in doc if isinstance(doc, list) else [doc]:
        if isinstance(msg, dict) and isinstance(msg.get("result"), dict):
            changed = _filter_result(msg["result"], visible) or changed
    return changed


def filter_json_body(raw: bytes, visible: Visible) -> bytes:
    """Rewrite a JSON (single or batch) answer.

    Raises:
        Unfilterable: the body is not JSON (it could carry a list the caller must not see).
    """
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Unfilterable(f"answer is not JSON: {exc.__class__.__name__}") from None
    return json.dumps(doc, separators=(",", ":")).encode() if _filter_doc(doc, visible) else raw


def filter_sse_event(event: bytes, visible: Visible) -> bytes:
    """Rewrite one complete SSE event (including its terminating blank line); b"" drops it.

    Events without `data` (comments, `retry`, keep-alives) pass unchanged; an event whose data is
    not JSON is dropped, since what it carries cannot be checked.
    """
    lines = event.split(b"\n")
    data_idx = [i for i, ln in enumerate(lines) if ln.startswith(b"data:")]
    if not data_idx:
        return event
    payload = b"\n".join(lines[i][5:].removeprefix(b" ") for i in data_idx)
    try:
        msg = json.loads(payload)
    except (ValueError, RecursionError):
        return b""
    if not _filter_doc(msg, visible):
        return event
    new_data = b"data: " + json.dumps(msg, separators=(",", ":")).encode()
    out = [ln for i, ln in enumerate(lines) if i not in data_idx[1:]]
    out[data_idx[0]] = new_data
    return b"\n".join(out)


async def iter_sse_events(chunks: AsyncIterable[bytes], max_event: int = _MAX_EVENT) -> AsyncIterator[bytes]:
    """Yield complete SSE events (each ending in its blank line) as soon as they arrive.

    Raises:
        Unfilterable: an event grew past `max_event` bytes (it cannot be parsed whole).
    """
    buf = b""
    async for chunk in chunks:
        buf += chunk.replace(b"\r\n", b"\n")
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            yield buf[: end + 2]
            buf = buf[end + 2 :]
        if len(buf) > max_event:
            raise Unfilterable("SSE event too large to filter")
    if buf:
        yield buf
