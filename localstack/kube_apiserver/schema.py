"""Structural-schema handling for custom resources, as the real API server does it.

For each write the server (1) applies `default`s from the version's `openAPIV3Schema` to absent
fields, (2) prunes fields the schema does not declare (unless the node carries
`x-kubernetes-preserve-unknown-fields: true`), then (3) validates: JSON Schema (OpenAPI v3
flavour: `nullable`, `x-kubernetes-int-or-string`) plus list uniqueness for
`x-kubernetes-list-type: set|map`. Failures become `StatusCause`s with the real reasons
(FieldValueRequired, FieldValueNotSupported, FieldValueTypeInvalid, FieldValueDuplicate, ...).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from typing import Any

import jsonschema

from localstack.kube_apiserver.status import JSON, cause

_TOP_LEVEL_KEPT = ("apiVersion", "kind", "metadata")


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value or "t" in value


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time")(_date_time)
    return checker


def to_json_schema(node: Any) -> Any:
    """Translate OpenAPI v3 schema dialect into JSON Schema draft 4 for `jsonschema`."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default", "example", "externalDocs"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        else:
            out[key] = to_json_schema(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def default_and_prune(value: Any, schema: JSON, *, top: bool = False) -> Any:
    """Apply schema defaults to absent fields and drop undeclared ones; returns the new value."""
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        if isinstance(props, dict):
            for key, sub in props.items():
                if key not in value and isinstance(sub, dict) and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
            for key in list(value):
                if key in props:
                    value[key] = default_and_prune(value[key], props[key])
                elif top and key in _TOP_LEVEL_KEPT:
                    continue
                elif isinstance(additional, dict):
                    value[key] = default_and_prune(value[key], additional)
                elif not preserve and additional is not True:
                    del value[key]
        elif isinstance(additional, dict):
            for key in list(value):
                value[key] = default_and_prune(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [default_and_prune(v, schema["items"]) for v in value]
    return value


def field_path(parts: Sequence[Any]) -> str:
    """`spec.tools[0].name` from a jsonschema absolute path."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


def _causes_for(error: jsonschema.ValidationError) -> Iterator[JSON]:
    field = field_path(list(error.absolute_path))
    val = error.validator
    inst = error.instance
    expected: Any = error.validator_value
    shown = json.dumps(inst)
    if val == "required":
        for name in expected:
            if isinstance(inst, dict) and name not in inst:
                yield cause("FieldValueRequired", f"{field}.{name}" if field else name, "Required value")
    elif val == "enum":
        supported = ", ".join(json.dumps(v) for v in expected)
        yield cause("FieldValueNotSupported", field, f"Unsupported value: {shown}: supported values: {supported}")
    elif val == "type":
        yield cause(
            "FieldValueTypeInvalid",
            field,
            f'Invalid value: "{_go_type(inst)}": {field} in body must be of type {error.validator_value}: {shown}',
        )
    elif val == "pattern":
        yield cause(
            "FieldValueInvalid",
            field,
            f"Invalid value: {shown}: {field} in body should match '{error.validator_value}'",
        )
    elif val == "maxLength":
        yield cause("FieldValueTooLong", field, f"Too long: may not be more than {error.validator_value} bytes")
    elif val == "minLength":
        yield cause(
            "FieldValueInvalid",
            field,
            f"Invalid value: {shown}: {field} in body should be at least {error.validator_value} chars long",
        )
    elif val in ("minimum", "maximum"):
        rel = "greater" if val == "minimum" else "less"
        yield cause(
            "FieldValueInvalid",
            field,
            f"Invalid value: {shown}: {field} in body should be {rel} than or equal to {error.validator_value}",
        )
    elif val == "minItems":
        yield cause(
            "FieldValueInvalid",
            field,
            f"Invalid value: {len(inst) if isinstance(inst, list) else shown}: "
            f"{field} in body should have at least {error.validator_value} items",
        )
    else:
        yield cause("FieldValueInvalid", field, f"Invalid value: {shown}: {error.message}")


def _list_uniqueness(value: Any, schema: JSON, path: list[Any]) -> Iterator[JSON]:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, sub in value.items():
            sub_schema = props.get(key, additional if isinstance(additional, dict) else None)
            if isinstance(sub_schema, dict):
                yield from _list_uniqueness(sub, sub_schema, [*path, key])
    elif isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: list[Any] = []
        for i, item in enumerate(value):
            if list_type == "set":
                ident: Any = item
            elif list_type == "map" and isinstance(item, dict):
                ident = {k: item.get(k) for k in keys}
            else:
                ident = None
            if ident is not None:
                if ident in seen:
                    yield cause("FieldValueDuplicate", field_path([*path, i]), f"Duplicate value: {json.dumps(ident)}")
                seen.append(ident)
            yield from _list_uniqueness(item, items or {}, [*path, i])


class StructuralSchema:
    """One CRD version's schema: defaulting, pruning and validation of whole objects."""

    def __init__(self, openapi: JSON) -> None:
        self.openapi = openapi
        draft = to_json_schema(openapi)
        jsonschema.Draft4Validator.check_schema(draft)
        self._validator = jsonschema.Draft4Validator(draft, format_checker=_format_checker())

    def admit(self, obj: JSON) -> JSON:
        """Default and prune `obj` in place (returned for convenience)."""
        result = default_and_prune(obj, self.openapi, top=True)
        assert isinstance(result, dict)
        return result

    def causes(self, obj: JSON) -> list[JSON]:
        """Every validation failure as a StatusCause, ordered by field."""
        body = {k: v for k, v in obj.items() if k != "metadata"}
        found = [c for err in self._validator.iter_errors(body) for c in _causes_for(err)]
        found.extend(_list_uniqueness(body, self.openapi, []))
        return sorted(found, key=lambda c: (c["field"], c["message"]))
