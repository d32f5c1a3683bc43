"""Label and field selectors with the real API server's grammar and semantics.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k` (exists), `!k` (does not
exist), comma-separated and ANDed. `!=` and `notin` also match objects without the label, as in
Kubernetes. Field selectors: `metadata.name` and `metadata.namespace` with `=`, `==`, `!=`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from localstack.kube_apiserver.status import ApiError, bad_request

Predicate = Callable[[Mapping[str, Any]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|!=|=)\s*(?P<value>[-A-Za-z0-9_.]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")


def _split_terms(selector: str) -> list[str]:
    # Commas inside `in (a,b)` do not separate requirements.
    terms: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t for t in terms if t.strip()]


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def _term(term: str) -> Predicate:
    m = _SET_RE.match(term)
    if m:
        key, op = m["key"], m["op"]
        values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
        if not values:
            raise bad_request(f'unable to parse requirement: values for "{op}" must not be empty: {term.strip()}')
        if op == "in":
            return lambda o: key in _labels(o) and _labels(o)[key] in values
        return lambda o: key not in _labels(o) or _labels(o)[key] not in values
    m = _EQ_RE.match(term)
    if m:
        key, op, value = m["key"], m["op"], m["value"]
        if op == "!=":
            return lambda o: _labels(o).get(key) != value
        return lambda o: key in _labels(o) and _labels(o)[key] == value
    m = _EXISTS_RE.match(term)
    if m:
        key = m["key"]
        if m["neg"]:
            return lambda o: key not in _labels(o)
        return lambda o: key in _labels(o)
    raise bad_request(f"unable to parse requirement: invalid label selector term: {term.strip()!r}")


def label_selector(selector: str | None) -> Predicate:
    """Compile a label selector; raises 400 BadRequest on a malformed one."""
    if not selector or not selector.strip():
        return lambda _o: True
    preds = [_term(t) for t in _split_terms(selector)]
    return lambda o: all(p(o) for p in preds)


_FIELD_RE = re.compile(r"^\s*(?P<field>[A-Za-z0-9_.]+)\s*(?P<op>==|!=|=)\s*(?P<value>[^,]*?)\s*$")
FIELD_PATHS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "metadata.name": lambda o: str((o.get("metadata") or {}).get("name", "")),
    "metadata.namespace": lambda o: str((o.get("metadata") or {}).get("namespace", "")),
}


def field_selector(selector: str | None) -> Predicate:
    """Compile a field selector over the supported fields; 400 for unknown fields or syntax."""
    if not selector or not selector.strip():
        return lambda _o: True
    preds: list[Predicate] = []
    for term in selector.split(","):
        if not term.strip():
            continue
        m = _FIELD_RE.match(term)
        if not m:
            raise bad_request(f"invalid field selector: {term.strip()!r}")
        getter = FIELD_PATHS.get(m["field"])
        if getter is None:
            raise bad_request(f"field label not supported: {m['field']}")
        value, negate = m["value"], m["op"] == "!="
        preds.append(_field_pred(getter, value, negate))
    return lambda o: all(p(o) for p in preds)


def _field_pred(getter: Callable[[Mapping[str, Any]], str], value: str, negate: bool) -> Predicate:
    if negate:
        return lambda o: getter(o) != value
    return lambda o: getter(o) == value


__all__ = ["ApiError", "Predicate", "field_selector", "label_selector"]
