"""Document validation (upstream §2.7): every rule, its order, and fail-closed loading."""

from __future__ import annotations

import dataclasses

import pytest

from mcp_sentinel.policy import (
    AuthBlock,
    PolicyBlock,
    PolicyError,
    ServerInfo,
    Tool,
    ToolRule,
    load_policy,
    to_pretty_json,
    validate,
)
from tests.helpers.policy_builders import doc, grant, session, stamp


def _invalid(d, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        validate(d)
    assert message in str(info.value)
    with pytest.raises(PolicyError):
        load_policy(to_pretty_json(d))


def test_valid_document_passes_and_loads() -> None:
    d = doc(grants=(grant("g", h="alice"),), sessions=(session("s", h="alice"),))
    validate(d)
    assert load_policy(to_pretty_json(d)).revision == d.revision


def test_missing_document() -> None:
    with pytest.raises(PolicyError, match="missing"):
        validate(None)


@pytest.mark.parametrize("version", ["", "v2", "V1", " v1"])
def test_schema_version_must_be_v1(version: str) -> None:
    _invalid(stamp(dataclasses.replace(doc(), schema_version=version)), "unsupported schema_version")


def test_revision_required() -> None:
    _invalid(dataclasses.replace(doc(), revision=""), "revision is required")


def test_revision_mismatch_after_tampering() -> None:
    d = doc(grants=(grant("g", h="alice"),))
    tampered = dataclasses.replace(d, grants=(grant("g", h="mallory"),))
    _invalid(tampered, "revision mismatch")


def test_server_name_required() -> None:
    _invalid(stamp(dataclasses.replace(doc(), server=ServerInfo(name=" ", namespace="ns"))), "server.name is required")


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (AuthBlock(mode="kerberos"), 'auth.mode "kerberos"'),
        (AuthBlock(mode="oauth"), "auth.issuer_url is required"),
        (AuthBlock(mode=" MTLS "), "auth.trust_domain is required"),
    ],
)
def test_auth_rules(auth: AuthBlock, message: str) -> None:
    _invalid(stamp(dataclasses.replace(doc(), auth=auth)), message)


@pytest.mark.parametrize("mode", ["", "none", "Header", "OAUTH", " mtls "])
def test_auth_modes_accepted_case_insensitively(mode: str) -> None:
    validate(stamp(dataclasses.replace(doc(), auth=AuthBlock(mode=mode, issuer_url="https://i", trust_domain="td"))))


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (PolicyBlock(mode="audit"), 'policy.mode "audit"'),
        (PolicyBlock(default_decision="audit"), 'policy.default_decision "audit"'),
    ],
)
def test_policy_block_rules(policy: PolicyBlock, message: str) -> None:
    _invalid(stamp(dataclasses.replace(doc(), policy=policy)), message)


def test_policy_enums_trimmed_case_insensitive() -> None:
    validate(stamp(dataclasses.replace(doc(), policy=PolicyBlock(mode=" Observe", default_decision="ALLOW "))))


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ((Tool(name=""),), "tools[0].name is required"),
        ((Tool(name="a"), Tool(name="a")), 'tools[1].name "a" is duplicated'),
        ((Tool(name="a", required_trust="max"),), 'tools[0].required_trust "max"'),
        ((Tool(name="a", side_effect="delete"),), 'tools[0].side_effect "delete"'),
    ],
)
def test_tool_rules(tools: tuple[Tool, ...], message: str) -> None:
    _invalid(doc(tools=tools), message)


def test_tool_with_empty_side_effect_is_valid() -> None:
    validate(doc(tools=(Tool(name="a", side_effect="", required_trust="HIGH"),)))


@pytest.mark.parametrize(
    ("grants", "message"),
    [
        ((grant(""),), "grants[0].name is required"),
        ((grant("g", ns="a"), grant("g", ns="a")), 'grants[1] "a/g" is duplicated'),
        ((grant("g", trust="root"),), 'grants[0].max_trust "root"'),
        ((grant("g", effects=("read", "")),), 'grants[0].allowed_side_effects[1] ""'),
        ((grant("g", effects=("exec",)),), 'grants[0].allowed_side_effects[0] "exec"'),
        ((grant("g", rules=(ToolRule(name=""),)),), "grants[0].tool_rules[0].name is required"),
        ((grant("g", rules=(ToolRule(name="a"), ToolRule(name="a"))),), 'tool_rules[1].name "a" is duplicated'),
        ((grant("g", rules=(ToolRule(name="a", decision="audit"),)),), 'tool_rules[0].decision "audit"'),
        ((grant("g", rules=(ToolRule(name="a", required_trust="x"),)),), 'tool_rules[0].required_trust "x"'),
    ],
)
def test_grant_rules(grants, message: str) -> None:
    _invalid(doc(grants=grants), message)


@pytest.mark.parametrize(
    ("sessions", "message"),
    [
        ((session(" "),), "sessions[0].name is required"),
        ((session("s", ns="a"), session("s", ns="a")), 'sessions[1] "a/s" is duplicated'),
        ((session("s", consented="total"),), 'sessions[0].consented_trust "total"'),
    ],
)
def test_session_rules(sessions, message: str) -> None:
    _invalid(doc(sessions=sessions), message)


def test_same_names_in_different_namespaces_are_valid() -> None:
    # §11 #6: uniqueness is per (namespace, name).
    grants = (grant("g", ns="a"), grant("g", ns="b"))
    validate(doc(grants=grants, sessions=(session("s", ns="a"), session("s", ns="b"))))


def test_first_error_wins_in_documented_order() -> None:
    broken = dataclasses.replace(
        doc(
            tools=(Tool(name=""),),
            grants=(grant(""),),
            sessions=(session(""),),
        ),
        auth=AuthBlock(mode="bad"),
        policy=PolicyBlock(mode="bad"),
        server=ServerInfo(name=""),
    )
    d = dataclasses.replace(broken, schema_version="v9", revision="")
    expected = [
        ("unsupported schema_version", lambda x: dataclasses.replace(x, schema_version="v1")),
        ("revision is required", lambda x: dataclasses.replace(x, revision="sha256:00")),
        ("revision mismatch", stamp),
        ("server.name is required", lambda x: stamp(dataclasses.replace(x, server=ServerInfo(name="s")))),
        ("auth.mode", lambda x: stamp(dataclasses.replace(x, auth=None))),
        ("policy.mode", lambda x: stamp(dataclasses.replace(x, policy=None))),
        ("tools[0].name", lambda x: stamp(dataclasses.replace(x, tools=()))),
        ("grants[0].name", lambda x: stamp(dataclasses.replace(x, grants=()))),
        ("sessions[0].name", lambda x: stamp(dataclasses.replace(x, sessions=()))),
    ]
    for message, fix in expected:
        with pytest.raises(PolicyError) as info:
            validate(d)
        assert message in str(info.value)
        d = fix(d)
    validate(d)
