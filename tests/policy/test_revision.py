"""Canonical encoding and revision digests (upstream §2.5)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from mcp_sentinel.policy import (
    AuthBlock,
    PolicyDocument,
    ServerInfo,
    Tool,
    canonical_bytes,
    compute_revision,
    parse_document,
    to_compact_json,
    to_pretty_json,
    validate,
)
from mcp_sentinel.policy.encode import quote

PAYMENTS = Path(__file__).with_name("payments_example.json")


def test_vector_minimal_document() -> None:
    text = '{"schema_version":"v1","revision":"","server":{"name":"demo","namespace":""}}'
    d = parse_document(text)
    assert canonical_bytes(d) == text.encode()
    assert compute_revision(d) == "sha256:583879a69bf1a22890777cc17af9505d813f7e24ceef4e7142e573936dbcffa4"


def test_vector_policy_and_tool() -> None:
    text = (
        '{"schema_version":"v1","revision":"","server":{"name":"demo","namespace":"mcp-servers"},'
        '"policy":{"mode":"allow-list","default_decision":"deny","policy_version":"v1"},'
        '"tools":[{"name":"echo","required_trust":"low","side_effect":"read"}]}'
    )
    d = parse_document(text)
    assert canonical_bytes(d) == text.encode()
    assert compute_revision(d) == "sha256:42002fe794ae524d3a79df4c016278b45fb9e63d018403a513dceb21ddade085"


def test_vector_payments_example_validates() -> None:
    d = parse_document(PAYMENTS.read_bytes())
    assert d.revision == "sha256:879763c5561c4841cb367cfb15be5d4bef2d4789d03ba8132dbd12c1c92cfe8e"
    assert compute_revision(d) == d.revision
    validate(d)
    # generated_at is informational: not part of the digest.
    assert b"generated_at" not in canonical_bytes(d)
    assert b'"revision":""' in canonical_bytes(d)


def test_pretty_output_is_two_space_indent_and_reparses_identically() -> None:
    d = parse_document(PAYMENTS.read_bytes())
    text = to_pretty_json(d)
    assert text.startswith('{\n  "schema_version": "v1",\n  "revision": "sha256:879763')
    assert '\n    "name": "payments",\n' in text
    assert not text.endswith("\n")
    assert json.loads(text) == json.loads(PAYMENTS.read_text())
    assert parse_document(text) == d


def test_go_string_escaping() -> None:
    assert quote("a<b>&c") == '"a\\u003cb\\u003e\\u0026c"'
    assert quote("\u2028\u2029") == '"\\u2028\\u2029"'
    assert quote('q"\\') == '"q\\"\\\\"'
    assert quote("\n\r\t\b\f") == '"\\n\\r\\t\\b\\f"'
    assert quote("\x00\x1f\x7f") == '"\\u0000\\u001f\x7f"'
    assert quote("héllo ✓") == '"héllo ✓"'  # non-ASCII stays raw UTF-8


def test_omitempty_and_present_empty_block() -> None:
    d = PolicyDocument(schema_version="v1", server=ServerInfo(name="x"), auth=AuthBlock())
    assert to_compact_json(d) == '{"schema_version":"v1","revision":"","server":{"name":"x","namespace":""},"auth":{}}'
    pretty = to_pretty_json(d)
    assert '"auth": {}' in pretty


def test_labels_are_sorted_and_empty_labels_vanish() -> None:
    d = PolicyDocument(
        schema_version="v1",
        server=ServerInfo(name="x"),
        tools=(Tool(name="a", labels={"zeta": "1", "alpha": "2", "Beta": "3"}), Tool(name="b", labels={})),
    )
    assert '"labels":{"Beta":"3","alpha":"2","zeta":"1"}' in to_compact_json(d)
    assert to_compact_json(d).endswith('{"name":"b"}]}')


def test_revision_ignores_key_order_whitespace_unknown_keys_and_case() -> None:
    original = json.loads(PAYMENTS.read_text())
    reordered = dict(reversed(list(original.items())))
    reordered["server"] = dict(reversed(list(original["server"].items())))
    reordered["unknown_top"] = {"x": 1}
    reordered["SERVER"] = reordered.pop("server")
    text = json.dumps(reordered, indent=7)
    d = parse_document(text)
    assert compute_revision(d) == original["revision"]
    validate(d)


def test_content_change_changes_revision_and_fails_validation() -> None:
    d = parse_document(PAYMENTS.read_bytes())
    tampered = dataclasses.replace(d, server=dataclasses.replace(d.server, cluster="prod"))
    assert compute_revision(tampered) != d.revision


def test_revision_is_sha256_of_canonical_bytes() -> None:
    d = parse_document(PAYMENTS.read_bytes())
    assert compute_revision(d) == "sha256:" + hashlib.sha256(canonical_bytes(d)).hexdigest()
