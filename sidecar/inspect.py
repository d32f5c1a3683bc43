"""What the gateway must inspect, and how a request body becomes the bytes it inspects.

Rules (issue 13 item 1; docs/decisions/sidecar.md "Gateway coverage"):
* POST, PUT and PATCH are always inspected (a JSON-RPC call by another verb must not bypass
  governance, §11.15). Any other verb that carries a body (Content-Length > 0 or chunked) is read,
  inspected for the audit record and refused: MCP defines no body for GET, DELETE or OPTIONS, and
  an upstream that executes one anyway must never see it.
* A `Content-Encoding` is decoded (gzip, deflate, br, zstd; stacked codings too) and the decoded
  bytes are both inspected and forwarded, without the header; anything else is refused with 415,
  a body that does not decode with 400, one that decodes past MAX_BODY_BYTES with 413.
* The answer is filtered per caller when the body asks for a list, and on every bodyless stream
  verb (GET resumes streams with `Last-Event-ID`); then the upstream is asked for `identity`.
"""

from __future__ import annotations

from aiohttp import web

from mcp_sentinel import jsonrpc
from sidecar.encoding import codings, decode_body
from sidecar.errors import EncodingError
from sidecar.errors import Refusal as Refusal  # re-exported: built here

BODY_VERBS = frozenset({"POST", "PUT", "PATCH"})
LIST_METHODS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list"})


def must_inspect(request: web.Request) -> bool:
    """True when the request carries (or by its verb should carry) a body the gateway must read."""
    return request.method in BODY_VERBS or request.body_exists


def decode_request_body(request: web.Request, raw: bytes, limit: int) -> bytes | Refusal:
    """The body as the upstream would interpret it, with every content coding undone."""
    values = request.headers.getall("Content-Encoding", ())
    header = ",".join(values)
    if not codings(header):
        return raw
    try:
        return decode_body(raw, header, limit)
    except EncodingError as exc:
        if exc.kind == "unsupported":
            return Refusal(415, jsonrpc.INVALID_REQUEST, str(exc), "unsupported_content_encoding")
        if exc.kind == "too_large":
            return Refusal(413, jsonrpc.BODY_TOO_LARGE, f"decoded request body exceeds {limit} bytes", "body_too_large")
        return Refusal(400, jsonrpc.PARSE_ERROR, f"request body does not decode: {exc}", "undecodable_body")


def body_not_allowed(method: str) -> Refusal:
    """The refusal for a body on a verb that has none in MCP."""
    return Refusal(
        400,
        jsonrpc.INVALID_REQUEST,
        f"{method} requests must not carry a body: MCP sends JSON-RPC by POST",
        "body_not_allowed",
    )


def filters_answer(method: str, insp: jsonrpc.Inspection | None) -> bool:
    """True when the upstream's answer must be filtered per caller (and so requested unencoded)."""
    if method == "HEAD":
        return False
    if method not in BODY_VERBS:
        return True  # GET streams (resumed or not), DELETE and the rest: filtered by shape
    return insp is not None and any(m.method in LIST_METHODS for m in insp.messages)
