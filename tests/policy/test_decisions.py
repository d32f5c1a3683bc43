"""Deliberate departures from upstream (recorded in docs/decisions/policy.md and upstream.md)."""

from __future__ import annotations

import dataclasses

import pytest

from mcp_sentinel.policy import CompiledPolicy, Identity, validate
from mcp_sentinel.policy.reasons import GRANT_WITHOUT_TRUST
from tests.helpers.policy_builders import NOW, ask, doc, grant, session


def test_1_wildcard_grant_matches_any_identified_caller() -> None:
    d0 = doc(grants=(grant("everyone"),))
    for who in ({"h": "alice"}, {"a": "bot"}, {"t": "team-x"}):
        d = ask(d0, "read_doc", **who)
        assert (d.allowed, d.matched_grant) == (True, "everyone")
    assert ask(d0, "read_doc").reason == "missing_identity"


def test_1_wildcard_session_never_matches() -> None:
    d0 = doc(required=True, grants=(grant("everyone"),), sessions=(session("s"),))
    assert ask(d0, "read_doc", h="alice", s="s").reason == "session_not_found"


def test_1_wildcard_and_specific_grants_union() -> None:
    d0 = doc(grants=(grant("everyone", ns="a"), grant("alice-writes", ns="b", h="alice", effects=("write",),
                                                       trust="medium")))
    assert ask(d0, "write_doc", h="alice").allowed
    assert ask(d0, "write_doc", h="bob").reason == "side_effect_not_allowed"


@pytest.mark.parametrize("default", ["allow", "deny"])
def test_3_disabled_grant_blocks_under_default_allow(default: str) -> None:
    d0 = doc(default=default, grants=(grant("g", h="alice", disabled=True),))
    assert ask(d0, "read_doc", h="alice").reason == "tool_not_granted"
    assert not ask(d0, "read_doc", h="alice").allowed
    # A stranger with no grant at all still follows the default decision.
    assert ask(d0, "read_doc", h="bob").allowed is (default == "allow")


def test_4_observe_mode_allows_and_reports_would_deny() -> None:
    d0 = doc(mode="Observe", required=True, grants=(grant("g", h="alice"),), sessions=(session("s", h="alice"),))
    cases = {
        (): "missing_identity",
        (("h", "alice"),): "missing_session",
        (("h", "bob"), ("s", "s")): "session_not_found",
        (("h", "alice"), ("s", "s")): "",
    }
    for who, would in cases.items():
        d = ask(d0, "read_doc", **dict(who))
        assert (d.allowed, d.status, d.reason, d.would_deny_reason) == (True, 200, "allowed", would)
    d = ask(d0, "write_doc", h="alice", s="s")
    assert (d.allowed, d.would_deny_reason, d.matched_grant, d.required_side_effect) == (
        True, "side_effect_not_allowed", "g", "write")


def test_4_observe_mode_makes_every_tool_visible() -> None:
    policy = CompiledPolicy(doc(mode="observe"))
    assert policy.tool_visible(Identity(), "wipe", NOW)


def test_6_same_name_in_two_namespaces_is_valid_and_each_is_found() -> None:
    d0 = doc(required=True,
             grants=(grant("g", ns="b", h="bob"), grant("g", ns="a", h="alice")),
             sessions=(session("s", ns="b", h="bob"), session("s", ns="a", h="alice")))
    validate(d0)
    for who, ns in (("alice", "a"), ("bob", "b")):
        d = ask(d0, "read_doc", h=who, s="s")
        assert (d.allowed, d.matched_session_namespace, d.matched_grant_namespace) == (True, ns, ns)


def test_7_expiry_is_inclusive_and_unparseable_means_expired() -> None:
    at_now = "2027-01-15T08:00:00Z"
    d0 = doc(required=True, grants=(grant("g", h="a"),), sessions=(session("s", h="a", expires_at=at_now),))
    assert ask(d0, "read_doc", h="a", s="s", now=NOW - 0.001).allowed
    assert ask(d0, "read_doc", h="a", s="s", now=NOW).reason == "session_expired"
    bad = dataclasses.replace(d0.sessions[0], expires_at="soon")
    assert ask(CompiledPolicy(dataclasses.replace(d0, sessions=(bad,))), "read_doc", h="a", s="s").reason == (
        "session_expired")


def test_8_grant_without_trust_is_kept_but_never_emitted() -> None:
    assert GRANT_WITHOUT_TRUST == "grant_without_trust"
    # Lowest possible trust on a side-effect-allowing grant is still rank 1, so the step is unreachable.
    d = ask(doc(grants=(grant("g", h="a", trust=""),)), "read_doc", h="a")
    assert (d.allowed, d.admin_trust) == (True, "low")


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2027-01-15T08:00:00Z", NOW),
        ("2027-01-15t08:00:00z", NOW),
        ("2027-01-15T09:30:00+01:30", NOW),
        ("2027-01-15T08:00:00.25Z", NOW + 0.25),
        ("\u0662027-01-15T08:00:00Z", None),  # non-ASCII digit
        ("2027-01-15T08:00:00", None),
        ("2027-01-15T24:00:00Z", None),
        ("2027-01-15T08:00:00+25:00", None),
    ],
)
def test_7_rfc3339_parsing(text: str, epoch: float | None) -> None:
    from mcp_sentinel.policy.normalize import parse_rfc3339

    assert parse_rfc3339(text) == epoch
