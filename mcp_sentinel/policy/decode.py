"""Go-lenient decoding of a policy document (`encoding/json` into the §2.3 structs).

Like upstream: the first JSON value is read and trailing bytes ignored, unknown keys are
dropped, keys match case-insensitively (an exact match wins), a later duplicate key overwrites
an earlier one, `null` leaves a field empty, invalid UTF-8 and lone surrogates become U+FFFD.
Unlike upstream, a wrong JSON type for a known field is an error rather than a partial decode.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, TypeVar

from mcp_sentinel.go_json import key_fold
from mcp_sentinel.policy.document import PolicyDocument
from mcp_sentinel.policy.errors import PolicyError

T = TypeVar("T")
_SURROGATE = re.compile("[\ud800-\udfff]")
_LEADING_WS = " \t\r\n"


def _reject_constant(name: str) -> Any:
    raise PolicyError(f"policy document is not valid JSON: {name} is not a JSON value")


def _clean(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)


def _is_object(value: Any) -> bool:
    # object_pairs_hook=list turns objects into lists of (key, value) tuples; `[]` is ambiguous.
    return isinstance(value, _Obj)


class _Obj(list):  # type: ignore[type-arg]
    """Marker type for decoded JSON objects (so `{}` and `[]` stay distinguishable)."""


_DECODER = json.JSONDecoder(object_pairs_hook=_Obj, parse_constant=_reject_constant)


def _decode_value(kind: Any, value: Any, path: str) -> Any:
    if kind == "str":
        if not isinstance(value, str):
            raise PolicyError(f"{path}: expected a string, got {_kind_of(value)}")
        return _clean(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise PolicyError(f"{path}: expected true or false, got {_kind_of(value)}")
        return value
    if kind == "int":
        # Go decodes only integer literals into an int field (no 1.5, no 1e2, no true).
        if not isinstance(value, int) or isinstance(value, bool):
            raise PolicyError(f"{path}: expected an integer, got {_kind_of(value)}")
        return value
    if kind == "strs":
        if not isinstance(value, list) or _is_object(value):
            raise PolicyError(f"{path}: expected an array of strings, got {_kind_of(value)}")
        return tuple(_decode_value("str", item, f"{path}[{i}]") for i, item in enumerate(value))
    if kind == "labels":
        if not _is_object(value):
            raise PolicyError(f"{path}: expected an object of strings, got {_kind_of(value)}")
        labels: dict[str, str] = {}
        for key, item in value:
            if item is not None:
                labels[_clean(key)] = _decode_value("str", item, f"{path}.{key}")
        return labels
    shape, cls = kind
    if shape == "list":
        if not isinstance(value, list) or _is_object(value):
            raise PolicyError(f"{path}: expected an array of objects, got {_kind_of(value)}")
        return tuple(_decode_object(cls, item, f"{path}[{i}]") for i, item in enumerate(value))
    return _decode_object(cls, value, path)


def _kind_of(value: Any) -> str:
    if _is_object(value):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "null"


_LOOKUPS: dict[type, tuple[dict[str, Any], dict[str, Any]]] = {}


def _lookup(cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    # Per-class key tables, built once: large documents decode thousands of grants.
    tables = _LOOKUPS.get(cls)
    if tables is None:
        fields = dataclasses.fields(cls)
        tables = ({f.metadata["json"]: f for f in fields}, {key_fold(f.metadata["json"]): f for f in fields})
        _LOOKUPS[cls] = tables
    return tables


def _decode_object(cls: type[T], value: Any, path: str) -> T:
    if not _is_object(value):
        raise PolicyError(f"{path}: expected an object, got {_kind_of(value)}")
    exact, folded = _lookup(cls)
    out: dict[str, Any] = {}
    for key, item in value:
        fld = exact.get(key) or folded.get(key_fold(key))
        if fld is None:
            continue
        kind = fld.metadata["kind"]
        if item is None:
            # Go: null is a no-op for strings/bools and resets pointers, slices and maps.
            if kind not in ("str", "bool", "int") and kind[0] != "obj":
                out.pop(fld.name, None)
            continue
        out[fld.name] = _decode_value(kind, item, f"{path}.{fld.metadata['json']}" if path else fld.metadata["json"])
    return cls(**out)


def parse_document(raw: bytes | str) -> PolicyDocument:
    """Decode `policy.json` text into a `PolicyDocument` (not validated; see `validate`).

    Raises:
        PolicyError: the text is not JSON, its first value is not an object, or a known
            field has the wrong JSON type.
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else raw
    stripped = text.lstrip(_LEADING_WS)
    if not stripped:
        raise PolicyError("policy document is empty")
    try:
        value, _end = _DECODER.raw_decode(stripped)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy document is not valid JSON: {exc.msg} at offset {exc.pos}") from None
    except RecursionError:
        raise PolicyError("policy document is not valid JSON: nested too deeply") from None
    if not _is_object(value):
        raise PolicyError(f"policy document must be a JSON object, got {_kind_of(value)}")
    return _decode_object(PolicyDocument, value, "")
