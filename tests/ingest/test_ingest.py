"""The ingest function against a real tansu broker: every mode lands in Kafka exactly as expected."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from functions.ingest.settings import IngestSettings, SettingsError, parse_api_keys
from localstack.parts import ingest as ingest_part
from localstack.supervisor import http_ok
from mcp_sentinel.cloudevents_binary import from_kafka_binary, to_http_binary
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, encode_batch
from mcp_sentinel.envelope import new_envelope
from tests.fixtures.kafka import count_topic, read_topic
from tests.helpers.ingest import KEY, Harness

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TP = f"00-{TRACE}-00f067aa0ba902b7-01"




def ev(i: int = 0, server: str = "srv"):
    return new_envelope("mcp-gateway", "mcp.request", {"namespace": "ns1", "server": server, "i": i})


async def test_plain_envelope_lands_with_key_headers_and_trace(kafka_stack):
    h = Harness(kafka_stack)
    doc = {"source": "mcp-gateway", "event_type": "mcp.request", "timestamp": "2026-05-04T18:00:00Z",
           "payload": {"namespace": "ns1", "server": "srv", "tool_name": "add"}}
    async with h.client() as c:
        r = await c.post("/events", json=doc, headers={"x-api-key": KEY, "traceparent": TP, "baggage": "team=a"})
    assert r.status_code == 202 and r.json() == {"ok": True}
    [rec] = h.records(1)
    assert rec.key == b"ns1/srv"
    assert json.loads(rec.value) == doc["payload"]
    hdr = dict(rec.headers)
    assert hdr["ce_source"] == b"mcp-gateway" and hdr["ce_type"] == b"mcp.request"
    assert hdr["ce_time"] == b"2026-05-04T18:00:00Z" and hdr["ce_specversion"] == b"1.0"
    assert hdr["baggage"] == b"team=a"
    # kafka.produce continues the caller's trace; the envelope carries that trace id
    assert hdr["traceparent"].startswith(f"00-{TRACE}-".encode()) and hdr["ce_traceparent"] == hdr["traceparent"]
    decoded = from_kafka_binary(rec.headers, rec.value)
    assert decoded.envelope.trace_id == TRACE
    spans = {s.name: s for s in h.exporter.get_finished_spans()}
    assert spans["kafka.produce"].attributes["kafka.topic"] == h.topic
    assert spans["kafka.produce"].parent.span_id == spans["http.server"].context.span_id
    assert format(spans["http.server"].context.trace_id, "032x") == TRACE
    assert h.metric("ingest_events_accepted_total", mode="plain") == 1
    assert h.metric("ingest_produce_duration_seconds_count") == 1


async def test_binary_and_structured_modes(kafka_stack):
    h = Harness(kafka_stack)
    e1, e2 = ev(1), ev(2)
    headers, body = to_http_binary(e1)
    async with h.client() as c:
        r1 = await c.post("/events", content=body, headers={**headers, "x-api-key": KEY})
        structured = json.loads(encode_batch([e2]))[0]
        r2 = await c.post("/events", content=json.dumps(structured),
                          headers={"content-type": "application/cloudevents+json", "x-api-key": KEY})
    assert (r1.status_code, r2.status_code) == (202, 202)
    got = {from_kafka_binary(r.headers, r.value).envelope.id: r for r in h.records(2)}
    assert set(got) == {e1.id, e2.id}
    for e in (e1, e2):
        stored = from_kafka_binary(got[e.id].headers, got[e.id].value).envelope
        assert (stored.source, stored.event_type, stored.timestamp, dict(stored.payload)) == (
            e.source, e.event_type, e.timestamp, dict(e.payload))
        assert len(stored.trace_id) == 32  # a fresh trace started by ingest
    assert h.metric("ingest_events_accepted_total", mode="binary") == 1
    assert h.metric("ingest_events_accepted_total", mode="structured") == 1


async def test_batch_keeps_per_server_order_and_per_event_trace(kafka_stack):
    h = Harness(kafka_stack)
    events = [ev(i, server=f"s{i % 3}") for i in range(30)]
    body = encode_batch([(events[0], TP), *events[1:]])
    async with h.client() as c:
        r = await c.post("/events", content=body, headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": KEY})
    assert r.status_code == 202 and r.json() == {"ok": True, "accepted": 30}
    recs = h.records(30)
    assert len(recs) == 30
    by_key: dict[bytes, list[int]] = {}
    parts_for_key: dict[bytes, set[int]] = {}
    for rec in sorted(recs, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(rec.key, []).append(json.loads(rec.value)["i"])
        parts_for_key.setdefault(rec.key, set()).add(rec.partition)
    assert by_key == {f"ns1/s{k}".encode(): list(range(k, 30, 3)) for k in range(3)}
    assert all(len(p) == 1 for p in parts_for_key.values())
    first = next(r for r in recs if json.loads(r.value)["i"] == 0)
    assert dict(first.headers)["traceparent"].startswith(f"00-{TRACE}-".encode())


async def test_batch_partitions_match_the_kafka_default_partitioner(kafka_stack):
    # Ingest packs its own per-partition batches; a key must land where any Kafka client's
    # default (murmur2) partitioner puts it, or per-server order across producers breaks.
    from kafka.partitioner import murmur2

    h = Harness(kafka_stack)
    events = [ev(i, server=f"p{i}") for i in range(40)]
    async with h.client() as c:
        r = await c.post("/events", content=encode_batch(events),
                         headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": KEY})
    assert r.status_code == 202
    recs = h.records(40)
    assert len(recs) == 40
    parts = [0, 1, 2]
    assert {rec.partition for rec in recs} == set(parts)  # spread, not one batch on one partition
    for rec in recs:
        assert rec.partition == (murmur2(rec.key) & 0x7FFFFFFF) % len(parts)  # Java client's formula


async def test_without_event_spans_records_still_continue_each_trace(kafka_stack):
    """`event_spans=False` (no exporter configured): no kafka.produce spans, same trace structure."""
    h = Harness(kafka_stack, event_spans=False)
    events = [ev(i, server="cheap") for i in range(3)]
    body = encode_batch([(events[0], TP), *events[1:]])
    async with h.client() as c:
        r = await c.post("/events", content=body, headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": KEY})
        r2 = await c.post("/events", json={"source": "s", "event_type": "t", "payload": {"namespace": "ns1",
                          "server": "cheap2"}}, headers={"x-api-key": KEY, "traceparent": TP})
    assert r.status_code == 202 and r2.status_code == 202
    recs = {json.loads(x.value).get("i", -1): x for x in h.records(4)}
    assert len(recs) == 4
    request_span = next(s for s in h.exporter.get_finished_spans() if s.name == "http.server")
    request_trace = format(request_span.context.trace_id, "032x")
    seen_span_ids = set()
    for i, rec in recs.items():
        hdr = dict(rec.headers)
        version, trace_id, span_id, flags = hdr["traceparent"].decode().split("-")
        assert hdr["ce_traceparent"] == hdr["traceparent"] and version == "00"
        # element 0 and the plain event carried TP; the others continue the batch request's trace
        assert trace_id == (TRACE if i in (0, -1) else request_trace)
        assert flags == ("01" if i in (0, -1) else format(request_span.context.trace_flags, "02x"))
        assert span_id != TP.split("-")[2] and len(span_id) == 16
        seen_span_ids.add(span_id)
        assert from_kafka_binary(rec.headers, rec.value).envelope.trace_id == trace_id
    assert len(seen_span_ids) == 4  # every record is its own hop
    assert "kafka.produce" not in {s.name for s in h.exporter.get_finished_spans()}


async def test_invalid_batch_names_every_bad_field_and_writes_nothing(kafka_stack):
    h = Harness(kafka_stack)
    good = json.loads(encode_batch([ev(1)]))[0]
    bad = {k: v for k, v in good.items() if k not in ("source", "id")}
    async with h.client() as c:
        r = await c.post("/events", content=json.dumps([good, bad, {**good, "data": None}]),
                         headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": KEY})
        r2 = await c.post("/events", content=b"{nope", headers={"content-type": "application/json", "x-api-key": KEY})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_event"
    assert body["errors"] == [{"field": "[1].id", "reason": "required"}, {"field": "[1].source", "reason": "required"},
                              {"field": "[2].data", "reason": "required"}]
    assert r2.status_code == 400 and r2.json()["error"] == "invalid_json"
    assert count_topic(h.bootstrap, h.topic, settle=1.0) == 0
    assert h.metric("ingest_requests_rejected_total", reason="invalid_event") == 1


async def test_payload_with_a_mistyped_audit_field_is_refused_and_nothing_written(kafka_stack):
    """The audit payload schema (mcp_sentinel/audit_payload.py) at the trust boundary: a known field of the
    wrong JSON type would be stored as "" by its materialised column, so the whole request is refused."""
    h = Harness(kafka_stack)
    good = ev(1)
    bad = new_envelope("mcp-gateway", "mcp.request", {"namespace": "ns1", "server": "srv", "status": "200",
                                                      "decision": True, "custom": {"any": "shape"}})
    async with h.client() as c:
        r = await c.post("/events", content=encode_batch([good, bad]),
                         headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": KEY})
        single = await c.post("/events", json={"source": "s", "event_type": "t", "payload": {"server": 7}},
                              headers={"x-api-key": KEY})
        ok = await c.post("/events", content=encode_batch([good]),
                          headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": KEY})
    assert r.status_code == 400 and r.json()["error"] == "invalid_event"
    assert r.json()["errors"] == [{"field": "[1].payload.status", "reason": "must be an integer"},
                                  {"field": "[1].payload.decision", "reason": "must be a string"}]
    assert single.status_code == 400
    assert single.json()["errors"] == [{"field": "payload.server", "reason": "must be a string"}]
    assert ok.status_code == 202  # unknown keys stay allowed; the good event alone is accepted
    assert count_topic(h.bootstrap, h.topic, settle=1.0) == 1
    assert h.metric("ingest_requests_rejected_total", reason="invalid_event") == 2


async def test_body_over_one_mib_is_413(kafka_stack):
    h = Harness(kafka_stack)
    doc = {"source": "s", "event_type": "t", "payload": {"blob": "x" * (1024 * 1024)}}
    async with h.client() as c:
        r = await c.post("/events", json=doc, headers={"x-api-key": KEY})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


# --- authentication ---------------------------------------------------------------------------






async def test_auth_matrix(kafka_stack, jwks):
    doc = {"source": "mcp-gateway", "event_type": "t", "payload": {"a": 1, "namespace": "ns1", "server": "s1"}}
    keyed = Harness(kafka_stack, api_keys=parse_api_keys("other, " + KEY), oidc_jwks_url=jwks.url,
                    oidc_audience="ingest", oidc_issuer="https://idp")
    cases = [
        ({}, 401, "unauthorized"),
        ({"x-api-key": "wrong"}, 401, "unauthorized"),
        ({"x-api-key": KEY}, 202, None),
        ({"authorization": f"Bearer {jwks.token()}"}, 202, None),
        ({"authorization": f"Bearer {jwks.token(exp=time.time() - 120)}"}, 401, "invalid_token"),
        ({"authorization": f"Bearer {jwks.token(aud='someone-else')}"}, 401, "invalid_token"),
        ({"authorization": f"Bearer {jwks.token(iss='https://evil')}"}, 401, "invalid_token"),
        ({"authorization": "Bearer not-a-jwt"}, 401, "unauthorized"),
    ]
    async with keyed.client() as c:
        for headers, status, error in cases:
            r = await c.post("/events", json=doc, headers=headers)
            assert r.status_code == status, (headers, r.text)
            if error:
                assert r.json()["error"] == error, headers
    assert len(keyed.records(2)) == 2
    assert count_topic(keyed.bootstrap, keyed.topic, settle=1.0) == 2


def test_api_keys_fallback_and_settings_guards():
    dev = {"INGEST_ALLOW_UNBOUND_KEYS": "true", "KAFKA_BROKERS": "x:1"}
    s = IngestSettings.from_env({"API_KEYS": "a,b", **dev})
    assert [k.key for k in s.api_keys] == ["a", "b"]
    s = IngestSettings.from_env({"API_KEYS": "a", "INGEST_API_KEYS": "i#mcp-gateway/|other/", **dev})
    assert [(k.key, k.source_prefixes) for k in s.api_keys] == [("i", ("mcp-gateway/", "other/"))]
    with pytest.raises(SettingsError, match="OIDC_JWKS_URL"):
        IngestSettings.from_env({"OIDC_ISSUER": "x"})
    with pytest.raises(SettingsError, match="neither OIDC_ISSUER"):
        IngestSettings.from_env({"OIDC_JWKS_URL": "http://x"})
    with pytest.raises(SettingsError, match="PORT"):
        IngestSettings.from_env({"PORT": "abc"})


async def test_api_keys_fallback_accepts_writes(kafka_stack):
    env = {"API_KEYS": "legacy", "INGEST_ALLOW_UNBOUND_KEYS": "true"}
    h = Harness(kafka_stack, api_keys=IngestSettings.from_env(env).api_keys)
    async with h.client() as c:
        doc = {"source": "s", "event_type": "t", "payload": {}}
        r = await c.post("/events", json=doc, headers={"x-api-key": "legacy"})
    assert r.status_code == 202


async def test_no_credentials_refuses_unless_dev_flag(kafka_stack):
    doc = {"source": "s", "event_type": "t", "payload": {}}
    closed = Harness(kafka_stack, api_keys=())
    async with closed.client() as c:
        r = await c.post("/events", json=doc)
    assert r.status_code == 503 and r.json()["error"] == "auth_not_configured"
    assert "INGEST_ALLOW_UNAUTHENTICATED" in r.json()["message"]
    open_ = Harness(kafka_stack, api_keys=(), allow_unauthenticated=True)
    async with open_.client() as c:
        r = await c.post("/events", json=doc)
    assert r.status_code == 202


async def test_key_bound_to_source_prefix_cannot_forge(kafka_stack):
    h = Harness(kafka_stack, api_keys=parse_api_keys("gw#mcp-gateway"))
    async with h.client() as c:
        forged = encode_batch([ev(1), new_envelope("api", "grant.created", {"x": 1})])
        r = await c.post("/events", content=forged, headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": "gw"})
        ok = await c.post("/events", content=encode_batch([ev(2)]),
                          headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": "gw"})
    assert r.status_code == 403 and r.json()["errors"] == [
        {"field": "[1].source", "reason": "this credential may not write events for this source"}]
    assert ok.status_code == 202
    recs = h.records(1)
    assert [json.loads(x.value)["i"] for x in recs] == [2]
    assert count_topic(h.bootstrap, h.topic, settle=1.0) == 1


async def test_broker_down_is_503_and_not_ready(kafka_stack):
    dead = Harness(kafka_stack, brokers=("127.0.0.1:1",), produce_timeout_ms=1500)
    async with dead.client() as c:
        r = await c.post("/events", json={"source": "s", "event_type": "t", "payload": {}}, headers={"x-api-key": KEY})
        ready = await c.get("/ready")
        live = await c.get("/live")
    assert r.status_code == 503 and r.json()["error"] == "kafka_unavailable"
    assert ready.status_code == 503 and ready.json()["error"] == "kafka_unavailable"
    assert live.status_code == 200
    assert dead.metric("ingest_requests_rejected_total", reason="kafka_unavailable") == 1


def test_ingest_process_from_stack_part(kafka_stack):
    """`python -m functions.ingest` as the local stack runs it: ready, accepts, serves metrics."""
    cfg, sup = kafka_stack.cfg, kafka_stack.supervisor
    [comp] = ingest_part.components(cfg)
    sup.start(comp)
    try:
        assert http_ok(cfg.url("ingest", "/ready"))
        e = ev(7, server="proc")
        r = httpx.post(cfg.url("ingest", "/events"), content=encode_batch([e]), timeout=15,
                       headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": cfg.ingest_api_key})
        assert r.status_code == 202 and r.json() == {"ok": True, "accepted": 1}
        metrics = httpx.get(cfg.url("ingest_metrics", "/metrics"), timeout=5).text
        assert 'ingest_events_accepted_total{mode="batch"} 1.0' in metrics
        assert httpx.get(cfg.url("ingest", "/metrics"), timeout=5).status_code == 404  # metrics port only
        found = [r for r in read_topic(kafka_stack.bootstrap, "mcp.events", 50, timeout=5) if r.key == b"ns1/proc"]
        assert [from_kafka_binary(r.headers, r.value).envelope.id for r in found] == [e.id]
    finally:
        sup.stop("ingest")
