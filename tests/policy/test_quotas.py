"""Grant quotas in the policy document: codec, revision, validation, rendering and the compiled index."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime

import pytest

from mcp_sentinel.policy import PolicyError, compute_revision, load_policy, parse_document, to_pretty_json, validate
from mcp_sentinel.policy.document import Quota
from mcp_sentinel.policy.quotas import CompiledQuota, compile_quotas
from mcp_sentinel.policy.render import render_document, render_policy
from tests.helpers.policy_builders import doc, grant
from tests.helpers.render_examples import GRANT, SERVER

WRITES = Quota(limit=100, window_seconds=3600, per="session", side_effect="write")


def _with_quotas(*quotas: Quota):
    g = dataclasses.replace(grant("g", h="alice", effects=("read", "write")), quotas=quotas)
    return doc(grants=(g,))


def test_quotas_round_trip_through_the_document_with_the_shared_camel_case_keys() -> None:
    d = _with_quotas(WRITES, Quota(limit=5, window_seconds=2, per="human", tool="read_doc"))
    text = to_pretty_json(d)
    assert '"windowSeconds": 3600' in text and '"sideEffect": "write"' in text and '"limit": 100' in text
    loaded = load_policy(text)
    assert loaded.doc.grants[0].quotas == d.grants[0].quotas
    assert loaded.revision == d.revision


def test_a_grant_without_quotas_keeps_its_revision() -> None:
    # The field is appended and omitted when empty: documents rendered before quotas existed stay valid.
    d = doc(grants=(grant("g", h="alice"),))
    assert '"quotas"' not in to_pretty_json(d)
    assert compute_revision(d) == d.revision


def test_quotas_are_part_of_the_revision() -> None:
    a, b = _with_quotas(WRITES), _with_quotas(dataclasses.replace(WRITES, limit=101))
    assert a.revision != b.revision


@pytest.mark.parametrize("raw", ['"5"', "1.5", "1e2", "true"])
def test_a_non_integer_limit_is_refused_by_the_decoder(raw: str) -> None:
    text = to_pretty_json(_with_quotas(WRITES)).replace('"limit": 100', f'"limit": {raw}')
    with pytest.raises(PolicyError, match="expected an integer"):
        parse_document(text)


def test_null_limit_decodes_as_absent_and_then_fails_validation() -> None:
    text = to_pretty_json(_with_quotas(WRITES)).replace('"limit": 100', '"limit": null')
    parsed = parse_document(text)
    assert parsed.grants[0].quotas[0].limit == 0
    with pytest.raises(PolicyError, match="limit must be at least 1"):
        validate(dataclasses.replace(parsed, revision=compute_revision(parsed)))


@pytest.mark.parametrize(
    ("quota", "message"),
    [
        (Quota(limit=0, window_seconds=60, per="session"), "grants[0].quotas[0].limit must be at least 1"),
        (Quota(limit=-3, window_seconds=60, per="session"), "limit must be at least 1"),
        (Quota(limit=1, window_seconds=0, per="session"), "windowSeconds must be 1..2592000"),
        (Quota(limit=1, window_seconds=2592001, per="session"), "windowSeconds must be 1..2592000"),
        (Quota(limit=1, window_seconds=60, per=""), 'per "" must be session, agent or human'),
        (Quota(limit=1, window_seconds=60, per="team"), 'per "team" must be session, agent or human'),
        (Quota(limit=1, window_seconds=60, per="human", side_effect="delete"), 'sideEffect "delete" must be'),
        (Quota(limit=1, window_seconds=60, per="human", tool="  "), "tool must name a tool"),
    ],
)
def test_invalid_quotas_fail_validation_naming_the_quota(quota: Quota, message: str) -> None:
    d = _with_quotas(WRITES, quota) if "quotas[0]" not in message else _with_quotas(quota)
    with pytest.raises(PolicyError) as info:
        validate(d)
    assert message in str(info.value)
    with pytest.raises(PolicyError):
        load_policy(to_pretty_json(d))


def test_boundaries_are_valid() -> None:
    validate(_with_quotas(Quota(limit=1, window_seconds=1, per="AGENT"),
                          Quota(limit=1, window_seconds=2592000, per="human", side_effect="Destructive")))


def _grant_with(quotas: object) -> dict[str, object]:
    g = copy.deepcopy(GRANT)
    g["spec"]["quotas"] = quotas  # type: ignore[index]
    return g


def test_renderer_carries_spec_quotas_into_the_document() -> None:
    spec_quotas = [{"limit": 100, "windowSeconds": 3600, "per": "session", "sideEffect": "destructive"},
                   {"limit": 3, "windowSeconds": 60, "per": "human", "tool": "refund_invoice"}]
    d = render_document(SERVER, [_grant_with(spec_quotas)], [])
    assert d.grants[0].quotas == (
        Quota(limit=100, window_seconds=3600, per="session", side_effect="destructive"),
        Quota(limit=3, window_seconds=60, per="human", tool="refund_invoice"),
    )
    text = render_policy(SERVER, [_grant_with(spec_quotas)], [], now=datetime(2026, 1, 1, tzinfo=UTC))
    assert load_policy(text).quotas[("mcp-servers", "payments-ops-agent")][1].tool == "refund_invoice"


@pytest.mark.parametrize(
    ("quotas", "message"),
    [
        ("100/h", "quotas: expected a list"),
        ([{"limit": "100", "windowSeconds": 60, "per": "session"}], "quotas.limit: expected an integer"),
        ([{"limit": True, "windowSeconds": 60, "per": "session"}], "quotas.limit: expected an integer"),
        ([{"limit": 1, "windowSeconds": 60, "per": 3}], "quotas.per: expected a string"),
        ([{"limit": 1, "per": "session"}], "windowSeconds must be 1..2592000"),
    ],
)
def test_renderer_refuses_malformed_spec_quotas(quotas: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        render_policy(SERVER, [_grant_with(quotas)], [], now=datetime(2026, 1, 1, tzinfo=UTC))


def test_compiled_index_holds_only_grants_with_quotas_and_normalises_enums() -> None:
    plain = grant("plain", h="bob")
    limited = dataclasses.replace(
        grant("limited", h="alice"), quotas=(Quota(limit=2, window_seconds=5, per=" Session ", side_effect="WRITE"),)
    )
    index = compile_quotas((plain, limited))
    assert list(index) == [("ns", "limited")]
    (q,) = index[("ns", "limited")]
    assert q == CompiledQuota(key=("ns", "limited", 0), limit=2, window=5.0, per="session", tool="",
                              side_effect="write")


def test_quota_scope_by_tool_and_by_side_effect() -> None:
    every = CompiledQuota(("n", "g", 0), 1, 1.0, "session", "", "")
    by_tool = CompiledQuota(("n", "g", 1), 1, 1.0, "session", "search", "")
    by_effect = CompiledQuota(("n", "g", 2), 1, 1.0, "session", "", "write")
    both = CompiledQuota(("n", "g", 3), 1, 1.0, "session", "save", "write")
    assert every.applies("anything", "read")
    assert by_tool.applies("search", "read") and not by_tool.applies("save", "write")
    assert by_effect.applies("save", "write") and not by_effect.applies("search", "read")
    assert both.applies("save", "write") and not both.applies("other", "write")
