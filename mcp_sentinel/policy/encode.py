"""Canonical Go-JSON encoding, the revision digest and the pretty form the renderer writes (§2.5).

Go `encoding/json` rules reproduced here: declaration key order, `omitempty` (drops `""`,
`false`, nil blocks, empty lists and maps), sorted map keys, raw UTF-8 for non-ASCII, and
escapes for `"`, `\\`, control characters, `<`, `>`, `&`, U+2028 and U+2029.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

from mcp_sentinel.policy.document import PolicyDocument

_ESCAPES: dict[int, str] = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update(
    {
        0x08: "\\b",
        0x09: "\\t",
        0x0A: "\\n",
        0x0C: "\\f",
        0x0D: "\\r",
        ord('"'): '\\"',
        ord("\\"): "\\\\",
        ord("<"): "\\u003c",
        ord(">"): "\\u003e",
        ord("&"): "\\u0026",
        0x2028: "\\u2028",
        0x2029: "\\u2029",
    }
)


def quote(value: str) -> str:
    """A JSON string literal escaped exactly as Go's encoder does (HTML-safe)."""
    return '"' + value.translate(_ESCAPES) + '"'


def _is_empty(value: Any) -> bool:
    return (
        value is None
        or value is False
        or value == ""
        or (type(value) is int and value == 0)
        or (isinstance(value, (tuple, Mapping)) and not value)
    )


_LAYOUTS: dict[type, tuple[tuple[str, str, bool], ...]] = {}


def _layout(cls: type) -> tuple[tuple[str, str, bool], ...]:
    # dataclasses.fields() is slow enough to dominate large documents; compute each class once.
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = tuple((f.name, f.metadata["json"], f.metadata["omitempty"]) for f in dataclasses.fields(cls))
        _LAYOUTS[cls] = layout
    return layout


def _plain(value: Any) -> Any:
    """Dataclasses → ordered lists of (key, value) with omitempty applied; the encoders walk this."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return _Pairs((k, value[k]) for k in sorted(value))
    pairs = _Pairs()
    for name, key, omitempty in _layout(type(value)):
        item = getattr(value, name)
        if omitempty and _is_empty(item):
            continue
        pairs.append((key, _plain(item)))
    return pairs


class _Pairs(list):  # type: ignore[type-arg]
    """An encoded object's members in output order."""


def _compact(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(quote(value))
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif value is None:
        out.append("null")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, _Pairs):
        out.append("{")
        for i, (key, item) in enumerate(value):
            if i:
                out.append(",")
            out.append(quote(key))
            out.append(":")
            _compact(item, out)
        out.append("}")
    else:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _compact(item, out)
        out.append("]")


def _pretty(value: Any, out: list[str], indent: str) -> None:
    inner = indent + "  "
    if isinstance(value, _Pairs) and value:
        out.append("{")
        for i, (key, item) in enumerate(value):
            out.append(",\n" if i else "\n")
            out.append(inner + quote(key) + ": ")
            _pretty(item, out, inner)
        out.append("\n" + indent + "}")
    elif isinstance(value, list) and not isinstance(value, _Pairs) and value:
        out.append("[")
        for i, item in enumerate(value):
            out.append(",\n" if i else "\n")
            out.append(inner)
            _pretty(item, out, inner)
        out.append("\n" + indent + "]")
    else:
        _compact(value, out)


def to_compact_json(doc: PolicyDocument) -> str:
    """The compact Go-JSON encoding of `doc` as it stands (revision and generated_at included)."""
    out: list[str] = []
    _compact(_plain(doc), out)
    return "".join(out)


def canonical_bytes(doc: PolicyDocument) -> bytes:
    """What the revision hashes: compact encoding with `revision=""` and no `generated_at`."""
    return to_compact_json(dataclasses.replace(doc, revision="", generated_at="")).encode("utf-8")


def compute_revision(doc: PolicyDocument) -> str:
    """`"sha256:<hex>"` of the canonical bytes; independent of key order, unknown keys and whitespace."""
    return "sha256:" + hashlib.sha256(canonical_bytes(doc)).hexdigest()


def to_pretty_json(doc: PolicyDocument) -> str:
    """Go `MarshalIndent(doc, "", "  ")`: what the renderer writes to `policy.json` (no trailing newline)."""
    out: list[str] = []
    _pretty(_plain(doc), out, "")
    return "".join(out)
