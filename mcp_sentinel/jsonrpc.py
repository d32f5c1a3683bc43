"""JSON-RPC 2.0 inspection for MCP request bodies, and JSON-RPC error bodies for denials.

Stdlib only: the sidecar imports this on its hot path. Inspection never raises on client
input; it returns an `Inspection` whose `error` says what was wrong.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from mcp_sentinel.go_json import key_fold
from mcp_sentinel.policy.types import TOOL_CALL_METHODS

# JSON-RPC / MCP error codes used by the sidecar.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
HEADER_MISMATCH = -32020  # MCP 2026-07-28 "HeaderMismatch"
# Server-defined range (-32000..-32099): one code per HTTP class of denial.
UNAUTHENTICATED = -32001
FORBIDDEN = -32003
UNAVAILABLE = -32004
UPSTREAM_ERROR = -32005
BODY_TOO_LARGE = -32006

# Methods whose `Mcp-Name` header names the target (MCP 2026-07-28 "Request Metadata"); the same
# parameter is what the policy decides those methods on, so it must be present and a string.
_NAME_PARAM = {"tools/call": "name", "call_tool": "name", "prompts/get": "name", "resources/read": "uri"}
_TARGET_PARAM = _NAME_PARAM


@dataclass(frozen=True, slots=True)
class Message:
    """One JSON-RPC message of a POST body."""

    kind: str  # "request", "notification" or "response" (a client answering a server request)
    id: Any = None
    method: str = ""
    tool_name: str = ""
    params: Any = None
    # What the policy decides on: the tool or prompt name, or the resource URI ("" for other methods).
    target: str = ""

    @property
    def is_tool_call(self) -> bool:
        """True for `tools/call` (and the legacy `call_tool` alias)."""
        return self.method in TOOL_CALL_METHODS

    @property
    def has_id(self) -> bool:
        """True when the message expects a response."""
        return self.kind == "request"


@dataclass(slots=True)
class Inspection:
    """The result of inspecting one POST body."""

    messages: list[Message] = field(default_factory=list)
    batch: bool = False
    error: str = ""  # empty when the body is a well-formed JSON-RPC message or batch
    error_code: int = 0
    error_id: Any = None

    @property
    def ok(self) -> bool:
        """True when the body could be inspected."""
        return not self.error

    @property
    def tool_calls(self) -> list[Message]:
        """Every `tools/call` in the body."""
        return [m for m in self.messages if m.is_tool_call]

    @property
    def first_method(self) -> str:
        """The first message's method (for metrics and audit), empty for responses."""
        for m in self.messages:
            if m.method:
                return m.method
        return ""


# An upstream that decodes into structs may match keys case-insensitively (Go's encoding/json does,
# so Go MCP servers read `METHOD` or `Name` as `method`/`name`, and `paramſ` as `params`), while this
# gateway reads only the exact key: a differential like a repeated key. Such keys are refused in the
# envelope and in params; argument objects are maps in every SDK and keep their keys as sent.
_ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method", "params", "result", "error"})
_PARAM_KEYS = frozenset({"name", "uri", "arguments", "_meta", "cursor"})


def _case_variant(obj: dict[str, Any], known: frozenset[str]) -> str:
    """The first key that is not one of `known` but a case-insensitive decoder would take for one ("" if none)."""
    for key in obj:
        if key not in known and key_fold(key) in known:
            return key
    return ""


def _message(obj: Any) -> Message | tuple[str, int, Any]:
    if not isinstance(obj, dict):
        return ("JSON-RPC message must be an object", INVALID_REQUEST, None)
    msg_id = obj.get("id")
    if isinstance(msg_id, (dict, list, bool)):
        return ("JSON-RPC id must be a string, number or null", INVALID_REQUEST, None)
    variant = _case_variant(obj, _ENVELOPE_KEYS)
    if not variant and isinstance(obj.get("params"), dict):
        variant = _case_variant(obj["params"], _PARAM_KEYS)
    if variant:
        return (f"JSON-RPC key {variant!r} differs from a protocol key only in case", INVALID_REQUEST, msg_id)
    method = obj.get("method")
    if method is None:
        if "id" in obj and ("result" in obj or "error" in obj):
            # A client answering a server->client request (sampling, elicitation, roots).
            return Message(kind="response", id=msg_id)
        return ("JSON-RPC message has no method", INVALID_REQUEST, msg_id)
    if not isinstance(method, str) or not method.strip():
        return ("JSON-RPC method must be a non-empty string", INVALID_REQUEST, msg_id)
    params = obj.get("params")
    kind = "request" if "id" in obj else "notification"
    tool_name = target = ""
    key = _TARGET_PARAM.get(method)
    if key is not None:
        if not isinstance(params, dict):
            return (f"{method} params must be an object", INVALID_PARAMS, msg_id)
        value = params.get(key)
        if not isinstance(value, str) or not value:
            return (f"{method} params.{key} must be a non-empty string", INVALID_PARAMS, msg_id)
        target = value
        if method in TOOL_CALL_METHODS:
            tool_name = value
    elif params is not None and not isinstance(params, (dict, list)):
        return ("JSON-RPC params must be an object or array", INVALID_PARAMS, msg_id)
    return Message(kind=kind, id=msg_id, method=method, tool_name=tool_name, params=params, target=target)


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys are a parser differential: this gateway (like most parsers) keeps the last
    # value, an upstream may keep the first, so `{"name":"delete","name":"search"}` would be decided
    # as `search` and run as `delete`. Refused at every depth (arguments feed approvals and pins too).
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {key!r} in a JSON object")
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def loads_unique(body: bytes | str) -> Any:
    """`json.loads` that refuses objects with a repeated key (DuplicateKeyError, a ValueError)."""
    text = body.decode(json.detect_encoding(body), "surrogatepass") if isinstance(body, bytes) else body
    return _DECODER.decode(text)


def inspect_body(body: bytes) -> Inspection:
    """Parse a POST body as one JSON-RPC message or a batch; never raises."""
    if not body.strip():
        return Inspection(error="empty request body", error_code=INVALID_REQUEST)
    try:
        doc = loads_unique(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return Inspection(error=f"malformed JSON: {exc}", error_code=PARSE_ERROR)
    except RecursionError:
        # Hostile nesting would otherwise escape as an unhandled error (a 500 on the hot path).
        return Inspection(error="malformed JSON: nested too deeply", error_code=PARSE_ERROR)
    if isinstance(doc, list):
        if not doc:
            return Inspection(batch=True, error="empty JSON-RPC batch", error_code=INVALID_REQUEST)
        out = Inspection(batch=True)
        for item in doc:
            m = _message(item)
            if isinstance(m, tuple):
                return Inspection(batch=True, error=m[0], error_code=m[1], error_id=m[2])
            out.messages.append(m)
        return out
    m = _message(doc)
    if isinstance(m, tuple):
        return Inspection(error=m[0], error_code=m[1], error_id=m[2])
    return Inspection(messages=[m])


_B64_PREFIX, _B64_SUFFIX = "=?base64?", "?="


def decode_header_value(raw: str) -> str | None:
    """An MCP 2026-07-28 header value: plain ASCII as sent, or the `=?base64?{Base64 UTF-8}?=` form decoded.

    Values that cannot travel as plain header text (non-ASCII, control characters, surrounding
    spaces, or text that itself looks like the sentinel) are sent in that form. None when the
    sentinel's payload is not canonical Base64 or not UTF-8: such a header cannot be compared
    with the body, so it counts as a mismatch.
    """
    if not (raw.startswith(_B64_PREFIX) and raw.endswith(_B64_SUFFIX) and len(raw) >= len(_B64_PREFIX + _B64_SUFFIX)):
        return raw.strip()
    payload = raw[len(_B64_PREFIX) : -len(_B64_SUFFIX)]
    try:
        data = base64.b64decode(payload, validate=True)
        # Canonical only: one value, one spelling (no stray padding bits a second parser reads differently).
        if base64.b64encode(data).decode("ascii") != payload:
            return None
        return data.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def header_mismatch(insp: Inspection, mcp_method: str | None, mcp_name: str | None) -> str:
    """Why the MCP 2026-07-28 `Mcp-Method`/`Mcp-Name` headers disagree with the body ("" if they agree).

    The body is the source of truth for authorization; the headers exist so intermediaries can
    route without parsing, so any disagreement is rejected rather than trusted.
    """
    if mcp_method is None and mcp_name is None:
        return ""
    if insp.batch or len(insp.messages) != 1:
        return "Mcp-Method/Mcp-Name headers are not allowed on a batch"
    msg = insp.messages[0]
    if mcp_method is not None and mcp_method.strip() != msg.method:
        return f"Mcp-Method header {mcp_method.strip()!r} does not match body method {msg.method!r}"
    if mcp_name is not None:
        key = _NAME_PARAM.get(msg.method)
        body_name = msg.params.get(key) if key and isinstance(msg.params, dict) else None
        name = decode_header_value(mcp_name)
        if name is None:
            return f"Mcp-Name header {mcp_name.strip()!r} is not valid =?base64?...?= (canonical Base64 of UTF-8)"
        if not isinstance(body_name, str) or name != body_name:
            return f"Mcp-Name header {name!r} does not match body {key or 'name'} {body_name!r}"
    elif msg.method in _NAME_PARAM and mcp_method is not None:
        return f"Mcp-Name header is required for {msg.method}"
    return ""


def error_object(msg_id: Any, code: int, message: str, reason: str, **data: Any) -> dict[str, Any]:
    """A JSON-RPC error response; `error.data.reason` carries the sidecar's reason string."""
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "error": {"code": code, "message": message, "data": {"reason": reason, **data}},
    }


def error_body(msg_id: Any, code: int, message: str, reason: str, **data: Any) -> bytes:
    """`error_object` encoded as compact JSON bytes."""
    return json.dumps(error_object(msg_id, code, message, reason, **data), separators=(",", ":")).encode()


def code_for_status(status: int) -> int:
    """The JSON-RPC error code the sidecar uses for a denial HTTP status."""
    if status == 401:
        return UNAUTHENTICATED
    if status == 503:
        return UNAVAILABLE
    return FORBIDDEN
