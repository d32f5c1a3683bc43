"""Audit rows that cannot lie (issue 14 item 4): every writer is bound to one server, namespace and team.

Against the real ingest app and a real tansu broker: a credential for server A cannot produce a
row claiming server B, another namespace or another team; nothing of a refused request reaches
Kafka; the refusal is counted.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.ingest.auth import source_matches
from functions.ingest.settings import IngestSettings, SettingsError, parse_api_keys
from mcp_sentinel.cloudevents_binary import from_kafka_binary
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, encode_batch
from mcp_sentinel.envelope import new_envelope
from mcp_sentinel.gateway_credentials import CredentialError, GatewayBinding, issue, verify
from tests.fixtures.kafka import count_topic
from tests.helpers.ingest import Harness

SECRET = "gateway-secret-for-tests-0123456789abcdef"
A = GatewayBinding("team-a-ns", "server-a", "team-a")


def event(server: str = "server-a", namespace: str = "team-a-ns", source: str = "server-a-gateway", **extra: object):
    return new_envelope(source, "mcp.request", {"namespace": namespace, "server": server, **extra})


async def post(h: Harness, events: list, **headers: str):
    async with h.client() as c:
        return await c.post("/events", content=encode_batch(events),
                            headers={"content-type": BATCH_CONTENT_TYPE, **headers})


def stored(h: Harness, n: int) -> list[dict]:
    return [dict(from_kafka_binary(r.headers, r.value).envelope.payload) for r in h.records(n)]


def gateway_harness(kafka_stack) -> Harness:
    return Harness(kafka_stack, api_keys=(), allow_unbound_keys=False, gateway_secrets=(SECRET,))


async def test_gateway_credential_cannot_claim_another_server_or_namespace(kafka_stack):
    h = gateway_harness(kafka_stack)
    key = issue(SECRET, A)
    for forged in (event(server="server-b"), event(namespace="team-b-ns"), event(server="", namespace="")):
        r = await post(h, [event(), forged], **{"x-api-key": key})
        assert r.status_code == 403 and r.json()["error"] == "binding_mismatch", r.text
        assert all(e["field"].startswith("[1].payload.") for e in r.json()["errors"])
    no_fields = new_envelope("server-a-gateway", "mcp.request", {"tool_name": "x"})
    r = await post(h, [no_fields], **{"x-api-key": key})
    assert r.status_code == 403
    assert h.metric("ingest_requests_rejected_total", reason="binding_mismatch") == 4
    ok = await post(h, [event(i=1)], **{"x-api-key": key})
    assert ok.status_code == 202
    [row] = stored(h, 1)
    assert (row["server"], row["namespace"], row["i"]) == ("server-a", "team-a-ns", 1)
    assert count_topic(h.bootstrap, h.topic, settle=1.0) == 1  # nothing of the refused requests


async def test_team_comes_from_the_credential_never_the_payload(kafka_stack):
    """A server whose spec.teamID (hence its gateway's payload team) names another team changes nothing."""
    h = gateway_harness(kafka_stack)
    key = issue(SECRET, A)
    r = await post(h, [event(team_id="team-b", i=1), event(i=2), event(team_id="team-a", i=3)], **{"x-api-key": key})
    assert r.status_code == 202, r.text
    rows = sorted(stored(h, 3), key=lambda p: p["i"])
    assert [p["team_id"] for p in rows] == ["team-a"] * 3
    assert h.metric("ingest_events_team_restamped_total") == 1


async def test_forged_or_foreign_credentials_are_refused(kafka_stack):
    h = gateway_harness(kafka_stack)
    good = issue(SECRET, A)
    other_secret = issue("another-secret-of-at-least-32-bytes!!", A)
    head, claims, mac = good.split(".")
    spliced = ".".join([head, issue(SECRET, GatewayBinding("team-b-ns", "server-b", "team-b")).split(".")[1], mac])
    for bad in (other_secret, spliced, good[:-2], good + "x", "sgw1.e30.", "sgw1..", "sgw1"):
        r = await post(h, [event()], **{"x-api-key": bad})
        assert r.status_code == 401, (bad, r.text)
    assert count_topic(h.bootstrap, h.topic, settle=0.5) == 0


async def test_static_key_bound_to_server_and_team(kafka_stack):
    h = Harness(kafka_stack, allow_unbound_keys=False,
                api_keys=parse_api_keys("gw-a#server=team-a-ns/server-a;team=team-a;source=server-a-gateway"))
    bad = await post(h, [event(server="server-b")], **{"x-api-key": "gw-a"})
    assert bad.status_code == 403 and bad.json()["error"] == "binding_mismatch"
    ok = await post(h, [event(team_id="team-b")], **{"x-api-key": "gw-a"})
    assert ok.status_code == 202
    [row] = stored(h, 1)
    assert row["team_id"] == "team-a"


async def test_source_prefix_matches_only_at_a_delimiter(kafka_stack):
    h = Harness(kafka_stack, allow_unbound_keys=False,
                api_keys=parse_api_keys("gw#server=team-a-ns/server-a;source=server-a-gateway|mcp/"))
    for src, status in (("server-a-gateway-evil", 403), ("server-a-gatewayx", 403), ("mcp-x", 403),
                        ("server-a-gateway", 202), ("server-a-gateway/pod-1", 202), ("mcp/x", 202)):
        r = await post(h, [event(source=src)], **{"x-api-key": "gw"})
        assert r.status_code == status, (src, r.text)
    assert h.metric("ingest_requests_rejected_total", reason="source_not_allowed") == 3


@settings(max_examples=300, deadline=None)
@given(prefix=st.text(string.ascii_lowercase + "-.", min_size=1, max_size=12),
       rest=st.text(string.ascii_lowercase + "-._", min_size=1, max_size=12))
def test_prefix_without_delimiter_never_admits_a_longer_name(prefix: str, rest: str):
    assert not source_matches(prefix, prefix + rest)
    assert source_matches(prefix, prefix) and source_matches(prefix, prefix + "/" + rest)


async def test_unbound_key_is_refused_outside_local_development(kafka_stack):
    h = Harness(kafka_stack, allow_unbound_keys=False, api_keys=parse_api_keys("legacy"))
    r = await post(h, [event()], **{"x-api-key": "legacy"})
    assert r.status_code == 403 and r.json()["error"] == "credential_unbound"
    assert h.metric("ingest_requests_rejected_total", reason="credential_unbound") == 1
    with pytest.raises(SettingsError, match="not bound to a server"):
        IngestSettings.from_env({"INGEST_API_KEYS": "legacy", "KAFKA_BROKERS": "x:1"})
    with pytest.raises(SettingsError, match="INGEST_API_KEYS entry"):
        parse_api_keys("k#server=no-slash")
    with pytest.raises(SettingsError, match="INGEST_API_KEYS entry"):
        parse_api_keys("k#server=Bad_NS/x")
    with pytest.raises(SettingsError, match="team= needs server="):
        parse_api_keys("k#team=t")
    with pytest.raises(SettingsError, match="INGEST_GATEWAY_SECRET"):
        IngestSettings.from_env({"INGEST_GATEWAY_SECRET": "short", "KAFKA_BROKERS": "x:1"})
    s = IngestSettings.from_env({"INGEST_GATEWAY_SECRET": f"{SECRET},{SECRET}-old", "KAFKA_BROKERS": "x:1"})
    assert s.gateway_secrets == (SECRET, f"{SECRET}-old") and s.api_keys == ()


async def test_jwt_writer_is_bound_through_its_claims(kafka_stack, jwks):
    h = Harness(kafka_stack, api_keys=(), oidc_jwks_url=jwks.url, oidc_audience="ingest", oidc_issuer="https://idp")
    bearer = {"authorization": f"Bearer {jwks.token(namespace='team-a-ns', server='server-a', team_id='team-a')}"}
    for claims in ({"namespace": "-", "server": "-"}, {"namespace": "-"}, {"server": "-"},
                   {"namespace": "Not A Namespace"}):
        r = await post(h, [event()], authorization=f"Bearer {jwks.token(**claims)}")
        assert r.status_code == 403 and r.json()["error"] == "credential_unbound", (claims, r.text)
    other = await post(h, [event()], authorization=f"Bearer {jwks.token(namespace='team-b-ns', server='server-a')}")
    assert other.status_code == 403 and other.json()["error"] == "binding_mismatch"
    ok = await post(h, [event(team_id="team-b")], **bearer)
    assert ok.status_code == 202, ok.text
    [row] = stored(h, 1)
    assert row["team_id"] == "team-a"


names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(ns=names, server=names, team=names, pos=st.integers(min_value=0), char=st.sampled_from("AZaz09-_.="))
def test_credential_round_trips_and_any_change_breaks_it(ns: str, server: str, team: str, pos: int, char: str):
    binding = GatewayBinding(ns, server, team)
    key = issue(SECRET, binding)
    assert verify((SECRET,), key) == binding
    assert verify(("x" * 40, SECRET), key) == binding  # rotation: any listed secret
    assert verify(("x" * 40,), key) is None
    i = pos % len(key)
    mutated = key[:i] + char + key[i + 1:]
    # A changed credential is refused; only the unused low bits of the MAC's last base64
    # character may change without changing the MAC, and then it still names the same server.
    assert verify((SECRET,), mutated) in (None, binding)


def test_issue_refuses_bad_names_and_short_secrets():
    with pytest.raises(CredentialError):
        issue("short", A)
    for bad in (GatewayBinding("a/b", "s"), GatewayBinding("ns", "s/../t"), GatewayBinding("", "s"),
                GatewayBinding("ns", "s", "team b")):
        with pytest.raises(CredentialError):
            issue(SECRET, bad)


def test_issuer_cli_reads_the_secret_from_the_environment(monkeypatch, capsys):
    from mcp_sentinel.gateway_credentials import main

    monkeypatch.setenv("INGEST_GATEWAY_SECRET", f"{SECRET},old-secret-still-accepted-while-rotating")
    assert main(["--namespace", "team-a-ns", "--server", "server-a", "--team", "team-a"]) == 0
    assert verify((SECRET,), capsys.readouterr().out.strip()) == A
    monkeypatch.setenv("INGEST_GATEWAY_SECRET", "short")
    assert main(["--namespace", "team-a-ns", "--server", "server-a"]) == 2
    assert "at least 32 bytes" in capsys.readouterr().err


@settings(max_examples=300, deadline=None)
@given(ns=st.one_of(st.none(), st.integers(), st.text(max_size=12), st.just("team-a-ns")),
       server=st.one_of(st.none(), st.integers(), st.text(max_size=12), st.just("server-a")),
       team=st.one_of(st.none(), st.integers(), st.text(max_size=12), st.just("team-a")))
def test_any_event_not_naming_the_bound_server_is_refused_and_team_always_stamped(ns, server, team):
    from functions.ingest.binding import binding_errors, stamp_team
    from mcp_sentinel.cloudevents_codec import DecodedEvent

    payload = {k: v for k, v in (("namespace", ns), ("server", server), ("team_id", team)) if v is not None}
    [decoded] = [DecodedEvent(new_envelope("gw", "t", payload))]
    errors = binding_errors((decoded,), A, batch=False)
    assert bool(errors) == ((ns, server) != (A.namespace, A.server))
    (stamped,), changed = stamp_team((decoded,), A)
    assert stamped.envelope.payload["team_id"] == A.team
    assert changed == (0 if team in (None, "", A.team) else 1)
    assert {k: v for k, v in stamped.envelope.payload.items() if k != "team_id"} == \
        {k: v for k, v in payload.items() if k != "team_id"}


def test_local_stack_sidecar_credentials_are_bound_per_server(kafka_stack):
    """The local stack as users run it: server-a's sidecar key cannot write server-b's rows."""
    import httpx

    from localstack.parts import ingest as ingest_part
    from localstack.parts.sidecars import gateway_credential, sidecar_env
    from localstack.supervisor import http_ok

    cfg, sup = kafka_stack.cfg, kafka_stack.supervisor
    key_a = sidecar_env(cfg, "server-a", "sidecar_a", "sidecar_a_metrics")["ANALYTICS_API_KEY"]
    assert key_a == gateway_credential(cfg, "server-a") != gateway_credential(cfg, "server-b")
    [comp] = ingest_part.components(cfg)
    sup.start(comp)
    try:
        assert http_ok(cfg.url("ingest", "/ready"))

        def send(server: str) -> httpx.Response:
            body = encode_batch([event(server=server, namespace=cfg.namespace)])
            return httpx.post(cfg.url("ingest", "/events"), content=body, timeout=15,
                              headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": key_a})

        assert send("server-b").status_code == 403
        assert send("server-a").status_code == 202
    finally:
        sup.stop("ingest")
