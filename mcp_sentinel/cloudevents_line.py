"""The sidecar's CloudEvents encoder: one structured-mode event per spool line, on the request path.

The one structured-mode layout is `mcp_sentinel.cloudevents_codec.to_structured` (attribute order,
`time` format, compact non-ASCII JSON); `EventEncoder.line` writes the same bytes as
`json.dumps(to_structured(envelope))` without building and validating an `Envelope` per request
(tests/sidecar/test_upstream_client.py holds the two byte-equal). The spool ships lines verbatim
in `application/cloudevents-batch+json` bodies, which ingest decodes with the codec.

Stdlib only: the sidecar imports it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mcp_sentinel.cloudevents_codec import JSON_CONTENT_TYPE, SPECVERSION


class EventEncoder:
    """Encodes payloads as spool lines (compact structured CloudEvent JSON + newline).

    The constant envelope is encoded once and event ids come from a pooled `os.urandom` buffer
    (one getrandom(2) per 256 ids instead of one per event; still unpredictable, since ingest
    deduplicates on the id).
    """

    _IDS_PER_REFILL = 256

    def __init__(self, *, source: str, event_type: str) -> None:
        self._head = f'{{"specversion":"{SPECVERSION}","id":"'
        self._mid = f'","source":{json.dumps(source, ensure_ascii=False)},"type":{json.dumps(event_type)},"time":"'
        self._ct = f'","datacontenttype":"{JSON_CONTENT_TYPE}"'
        self._rand = b""
        self._pos = 0

    def new_id(self) -> str:
        """A random (version 4) UUID string."""
        if self._pos >= len(self._rand):
            self._rand = os.urandom(16 * self._IDS_PER_REFILL)
            self._pos = 0
        raw = bytearray(self._rand[self._pos : self._pos + 16])
        self._pos += 16
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def line(self, payload: Mapping[str, Any], traceparent: str = "", event_id: str = "") -> bytes:
        """One spool line for `payload`."""
        ts = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        tp = f',"traceparent":{json.dumps(traceparent)}' if traceparent else ""
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return f'{self._head}{event_id or self.new_id()}{self._mid}{ts}{self._ct}{tp},"data":{data}}}\n'.encode()
