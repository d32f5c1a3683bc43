"""Go-lenient decoding of policy.json and its error paths."""

from __future__ import annotations

import pytest

from mcp_sentinel.policy import PolicyError, load_policy, parse_document


def test_unknown_keys_dropped_and_keys_case_insensitive() -> None:
    d = parse_document('{"Schema_Version":"v1","SERVER":{"Name":"x","extra":1},"bogus":[1,2],"Grants":[{"NAME":"g"}]}')
    assert d.schema_version == "v1"
    assert d.server.name == "x"
    assert d.grants[0].name == "g"


def test_go_fold_matches_kelvin_and_long_s_but_exact_key_wins() -> None:
    d = parse_document('{"\u017fchema_version":"v1","server":{"name":"a"}}')
    assert d.schema_version == "v1"
    d = parse_document('{"server":{"name":"exact","NAME":"folded-later"}}')
    assert d.server.name == "folded-later"  # later duplicate (after folding) overwrites, as in Go


def test_first_json_value_wins_and_trailing_bytes_are_ignored() -> None:
    d = parse_document(' \n{"schema_version":"v1"} trailing garbage {"schema_version":"v2"}')
    assert d.schema_version == "v1"


def test_null_is_empty() -> None:
    d = parse_document('{"schema_version":null,"auth":null,"grants":null,"server":null}')
    assert d.schema_version == "" and d.auth is None and d.grants == () and d.server.name == ""


def test_present_empty_block_is_not_none() -> None:
    assert parse_document('{"auth":{}}').auth is not None


def test_invalid_utf8_and_lone_surrogates_become_replacement_char() -> None:
    d = parse_document(b'{"server":{"name":"a\xffb","namespace":"\\ud800x"}}')
    assert d.server.name == "a\ufffdb"
    assert d.server.namespace == "\ufffdx"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not json", "not valid JSON"),
        ('{"schema_version": "v1"', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got an array"),
        ('"text"', "must be a JSON object, got a string"),
        ("null", "must be a JSON object, got null"),
        ("42", "must be a JSON object, got a number"),
        ('{"schema_version": NaN}', "NaN is not a JSON value"),
        ('{"schema_version": 1}', "schema_version: expected a string, got a number"),
        ('{"server": []}', "server: expected an object, got an array"),
        ('{"grants": {}}', "grants: expected an array of objects, got an object"),
        ('{"grants": [{"disabled": "yes"}]}', "grants[0].disabled: expected true or false, got a string"),
        ('{"grants": [{"allowed_side_effects": "read"}]}', "grants[0].allowed_side_effects: expected an array"),
        ('{"tools": [{"name": "t", "labels": {"a": 1}}]}', "tools[0].labels.a: expected a string, got a number"),
        ('{"grants": [{"tool_rules": [5]}]}', "grants[0].tool_rules[0]: expected an object, got a number"),
        ("[" * 100000, "not valid JSON"),
    ],
)
def test_bad_input_raises_clear_policy_error(raw: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_document(raw)
    assert message in str(info.value)
    with pytest.raises(PolicyError):
        load_policy(raw)  # fail-closed
