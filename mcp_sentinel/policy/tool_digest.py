"""The digest of one MCP tool definition: what a pin records and what the gateway compares (issue 18).

sha256 over canonical JSON (sorted keys, no whitespace, UTF-8, non-ASCII kept raw) of the fields a
client's model sees and acts on: `name`, `description`, `inputSchema`, `outputSchema`, `annotations`.
Absent fields are omitted (so `{}` annotations and absent annotations differ: both are what the
server said). Other keys (`title`, `_meta`, `icons` ...) are not part of the pin: they do not change
what the tool does or what the model is told. Stdlib only: the sidecar imports it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

DIGEST_FIELDS = ("name", "description", "inputSchema", "outputSchema", "annotations")
PREFIX = "sha256:"


def pinned_definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a `tools/list` entry a pin covers (absent fields left out)."""
    return {key: tool[key] for key in DIGEST_FIELDS if key in tool}


def canonical_tool_json(tool: Mapping[str, Any]) -> bytes:
    """Canonical bytes of the pinned part of `tool` (what the digest hashes)."""
    return json.dumps(
        pinned_definition(tool), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def tool_digest(tool: Mapping[str, Any]) -> str:
    """`"sha256:<hex>"` of `tool`'s definition.

    Raises:
        ValueError: the definition holds a value JSON cannot carry (NaN, infinity) or is not JSON at all.
    """
    try:
        data = canonical_tool_json(tool)
    except TypeError as exc:
        raise ValueError(f"tool definition is not JSON: {exc}") from None
    return PREFIX + hashlib.sha256(data).hexdigest()


def is_digest(value: object) -> bool:
    """True for a well-formed `sha256:<64 lowercase hex>` string."""
    if not isinstance(value, str) or not value.startswith(PREFIX) or len(value) != len(PREFIX) + 64:
        return False
    return all(c in "0123456789abcdef" for c in value[len(PREFIX) :])
