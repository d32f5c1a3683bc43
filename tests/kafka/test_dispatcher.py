"""The local KafkaSource against real tansu and a real HTTP sink process."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from localstack.config import StackConfig, free_port
from localstack.kafka_source.settings import DispatcherSettings, SettingsError
from localstack.parts import dispatcher as dispatcher_part
from localstack.supervisor import PYTHON, Component, http_ok
from mcp_sentinel.cloudevents_binary import to_kafka_binary
from mcp_sentinel.cloudevents_codec import decode_batch, decode_http
from mcp_sentinel.env import parse_duration
from mcp_sentinel.envelope import new_envelope
from mcp_sentinel.kafka import ensure_topics
from tests.fixtures.kafka import KafkaStack, read_topic

SINK = Path(__file__).with_name("sink_server.py")



class Pipeline:
    """A fresh topic + DLQ, a sink process and a dispatcher process for one test."""

    def __init__(self, stack: KafkaStack, tmp: Path, mode: str = "single", dispatcher_env: dict[str, str] | None = None,
                 **sink_env: str) -> None:
        self.stack = stack
        self.id = uuid.uuid4().hex[:8]
        self.topic, self.dlq, self.group = f"ev-{self.id}", f"dlq-{self.id}", f"g-{self.id}"
        ensure_topics([stack.bootstrap], [self.topic, self.dlq])
        self.log = tmp / f"sink-{self.id}.jsonl"
        self.log.touch()
        self.sink_port, self.metrics_port = free_port(), free_port()
        sink = Component(name=f"sink-{self.id}", argv=[PYTHON, str(SINK), str(self.sink_port)],
                         env={"SINK_LOG": str(self.log), **sink_env},
                         health_url=f"http://127.0.0.1:{self.sink_port}/", startup_timeout=30)
        self.sink = sink
        stack.supervisor.start(sink)
        env = dispatcher_part.dispatcher_env(stack.cfg, f"http://127.0.0.1:{self.sink_port}/")
        env.update(KAFKA_TOPIC=self.topic, DEAD_LETTER_TOPIC=self.dlq, KAFKA_GROUP=self.group,
                   METRICS_PORT=str(self.metrics_port), DELIVERY_RETRY="4", DELIVERY_BACKOFF_DELAY="PT0.05S",
                   KAFKA_SESSION_TIMEOUT_MS="2000", DELIVERY_MODE=mode)
        env.update(dispatcher_env or {})
        [comp] = dispatcher_part.components(stack.cfg)
        self.dispatcher = dataclasses.replace(comp, name=f"dispatcher-{self.id}", env=env,
                                              health_url=f"http://127.0.0.1:{self.metrics_port}/metrics")
        self.names = [sink.name]

    def start_dispatcher(self) -> None:
        self.stack.supervisor.start(self.dispatcher)
        if self.dispatcher.name not in self.names:
            self.names.append(self.dispatcher.name)

    def close(self) -> None:
        for n in reversed(self.names):
            self.stack.supervisor.stop(n)

    def produce(self, events, raw: list[bytes] = ()) -> None:
        p = KafkaProducer(bootstrap_servers=[self.stack.bootstrap], acks="all")
        for e in events:
            rec = to_kafka_binary(e)
            p.send(self.topic, key=rec.key, value=rec.value, headers=rec.headers)
        for value in raw:
            p.send(self.topic, key=b"raw-key", value=value)
        p.flush()
        p.close()

    def received(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wait_for(self, pred, timeout: float = 40.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if pred(got):
                return got
            time.sleep(0.1)
        raise AssertionError(f"sink never satisfied the condition; got {len(self.received())} requests")

    def committed(self) -> dict[int, int | None]:
        c = KafkaConsumer(bootstrap_servers=[self.stack.bootstrap], group_id=self.group, enable_auto_commit=False)
        try:
            return {p: c.committed(TopicPartition(self.topic, p)) for p in range(3)}
        finally:
            c.close()

    def metric(self, name: str) -> float:
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture
def pipeline_factory(kafka_stack, tmp_path):
    made: list[Pipeline] = []

    def make(mode: str = "single", dispatcher_env: dict[str, str] | None = None, **sink_env: str) -> Pipeline:
        p = Pipeline(kafka_stack, tmp_path, mode, dispatcher_env, **sink_env)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def ok(reqs):
    return [r for r in reqs if r["status"] == 200]


def samples(p: Pipeline, name: str) -> dict[str, float]:
    """`name{partition="N"}` samples on the dispatcher's metrics page, by partition."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{p.metrics_port}/metrics", timeout=5).read().decode()
    return {line.split('partition="', 1)[1].split('"', 1)[0]: float(line.split()[-1])
            for line in text.splitlines() if line.startswith(name + "{")}  # fmt: skip


def wait_dead_lettered(p: Pipeline, n: int, timeout: float = 60.0) -> None:
    """Wait until the dispatcher reports `n` records durably dead-lettered (counted after acks=all).

    The sink logs a 400 before the dispatcher has even read it; reading the DLQ topic as soon as
    the sink saw the 400s raced the dead-letter write (first producer bootstrap and metadata for a
    fresh topic can take seconds on a loaded machine), which once made a record look missing.
    """
    deadline = time.monotonic() + timeout
    while p.metric("dispatcher_dead_lettered_total") < n and time.monotonic() < deadline:
        time.sleep(0.1)
    assert p.metric("dispatcher_dead_lettered_total") == n


def events(n: int, servers: int = 3, **extra):
    return [new_envelope("mcp-gateway", "mcp.request", {"namespace": "ns", "server": f"s{i % servers}", "i": i,
                                                         **extra}) for i in range(n)]


def test_in_order_delivery_pass_through_wrapping_and_commit(pipeline_factory):
    p = pipeline_factory()
    evs = events(30)
    p.produce(evs, raw=[b'{"hello": 1}'])
    p.start_dispatcher()
    got = p.wait_for(lambda r: len(ok(r)) >= 31)
    ce = [r for r in got if r["headers"]["ce-type"] == "mcp.request"]
    # pass-through: the sink decodes exactly the envelope that was produced
    decoded = {decode_http(r["headers"], r["body"].encode()).events[0].envelope.id: r for r in ce}
    assert set(decoded) == {e.id for e in evs}
    for e in evs:
        env = decode_http(decoded[e.id]["headers"], decoded[e.id]["body"].encode()).events[0].envelope
        assert env == e
    # per key (= per partition) in production order
    order: dict[str, list[int]] = {}
    for r in ce:
        order.setdefault(json.loads(r["body"])["server"], []).append(json.loads(r["body"])["i"])
    assert order == {f"s{k}": list(range(k, 30, 3)) for k in range(3)}
    [raw] = [r for r in got if r["headers"]["ce-type"] == "dev.knative.kafka.event"]
    h = raw["headers"]
    assert h["ce-source"] == f"/apis/v1/namespaces/mcp-sentinel/kafkasources/mcp-events#{p.topic}"
    assert h["ce-id"] == f"partition:{h['ce-kafkapartition']}/offset:{h['ce-kafkaoffset']}"
    assert h["ce-key"] == "raw-key" and raw["body"] == '{"hello": 1}'
    assert "traceparent" in h  # the dispatcher's delivery span continues into the POST
    # every delivery carries the credential the processor requires of the event source
    assert {r["headers"].get("authorization") for r in got} == {f"Bearer {StackConfig().processor_delivery_token}"}
    # commits reach the end of every partition once delivered
    deadline = time.monotonic() + 10
    while sum(v or 0 for v in p.committed().values()) < 31 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum(v or 0 for v in p.committed().values()) == 31
    assert p.metric("dispatcher_delivered_total") == 31
    # lag comes from this member's own commits (no OffsetFetch on the consumer thread): 0 once all are in
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lag = samples(p, "dispatcher_consumer_lag_records")
        if lag and set(lag) == set(samples(p, "dispatcher_committed_offset")) and not any(lag.values()):
            break
        time.sleep(0.2)
    committed = samples(p, "dispatcher_committed_offset")
    assert lag and set(lag) == set(committed) and not any(lag.values())
    assert sum(committed.values()) == 31


def test_sink_500_then_200_is_retried_without_loss(pipeline_factory):
    p = pipeline_factory(SINK_FAIL_FIRST="2")
    evs = events(12)
    p.produce(evs)
    p.start_dispatcher()
    got = p.wait_for(lambda r: len(ok(r)) >= 12)
    delivered = [r["headers"]["ce-id"] for r in ok(got)]
    assert sorted(delivered) == sorted(e.id for e in evs)  # each once: no duplicates beyond retries
    assert sum(1 for r in got if r["status"] == 500) == 24
    assert p.metric("dispatcher_retries_total") == 24
    assert read_topic(p.stack.bootstrap, p.dlq, 1, timeout=1.5) == []


def test_4xx_goes_to_dead_letter_topic_at_once(pipeline_factory):
    p = pipeline_factory()
    good, poison = events(6), events(2, poison=True)
    p.produce(good + poison)
    p.start_dispatcher()
    p.wait_for(lambda r: len(ok(r)) >= 6 and sum(x["status"] == 400 for x in r) >= 2)
    wait_dead_lettered(p, 2)
    dlq = read_topic(p.stack.bootstrap, p.dlq, 2)
    assert sorted(dict(r.headers)["ce_id"].decode() for r in dlq) == sorted(e.id for e in poison)
    for r in dlq:
        h = dict(r.headers)
        assert h["dlq-reason"] == b"http_400" and h["dlq-status"] == b"400" and h["dlq-attempts"] == b"1"
        assert h["dlq-source-topic"] == p.topic.encode()
        assert r.key in (b"ns/s0", b"ns/s1")
    assert sum(x["status"] == 400 for x in p.received()) == 2  # not retried


def test_concurrent_dead_letters_from_every_partition_all_land_once(pipeline_factory):
    """Partition tasks dead-letter from worker threads at the same moment (one producer, under a lock)."""
    p = pipeline_factory()
    poison = events(16, servers=8, poison=True)  # keys ns/s0..s7 cover all 3 partitions (murmur2)
    p.produce(poison)
    p.start_dispatcher()
    wait_dead_lettered(p, 16)
    dlq = read_topic(p.stack.bootstrap, p.dlq, 17, timeout=3)  # one more than expected: duplicates would show
    assert sorted(dict(r.headers)["ce_id"].decode() for r in dlq) == sorted(e.id for e in poison)
    assert len({r.partition for r in dlq}) == 3
    assert sum(x["status"] == 400 for x in p.received()) == 16


def test_killed_mid_stream_and_restarted_delivers_everything(pipeline_factory):
    p = pipeline_factory(SINK_DELAY_MS="15")
    evs = events(150)
    p.produce(evs)
    p.start_dispatcher()
    p.wait_for(lambda r: len(ok(r)) >= 20)
    p.stack.supervisor.stop(p.dispatcher.name, kill=True)  # SIGKILL: no commit, no LeaveGroup
    before = len(ok(p.received()))
    assert before < 150
    p.start_dispatcher()
    got = p.wait_for(lambda r: {x["headers"]["ce-id"] for x in ok(r)} >= {e.id for e in evs}, timeout=60)
    ids = [x["headers"]["ce-id"] for x in ok(got)]
    assert set(ids) == {e.id for e in evs}  # at least once, ids stable across redelivery


def test_settings_and_backoff():
    assert parse_duration("DELIVERY_TIMEOUT", "PT0.5S") == 0.5
    assert parse_duration("DELIVERY_TIMEOUT", "PT1M30S") == 90
    assert parse_duration("DELIVERY_TIMEOUT", "P1DT1H") == 90000
    for bad in ("5s", "PT", "P", "PTS", ""):
        with pytest.raises(SettingsError):
            parse_duration("DELIVERY_TIMEOUT", bad)
    s = DispatcherSettings.from_env({"SINK_URL": "http://x/", "DELIVERY_BACKOFF_DELAY": "PT1S",
                                     "DELIVERY_MAX_BACKOFF": "PT5S"})
    assert [s.backoff(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    lin = dataclasses.replace(s, backoff_policy="linear")
    assert [lin.backoff(n) for n in (1, 2, 3)] == [1, 2, 3]
    with pytest.raises(SettingsError, match="SINK_URL"):
        DispatcherSettings.from_env({})
    with pytest.raises(SettingsError, match="DELIVERY_BACKOFF_POLICY"):
        DispatcherSettings.from_env({"SINK_URL": "http://x/", "DELIVERY_BACKOFF_POLICY": "random"})
    with pytest.raises(SettingsError, match="DELIVERY_RETRY"):
        DispatcherSettings.from_env({"SINK_URL": "http://x/", "DELIVERY_RETRY": "-1"})


def test_dispatcher_process_health(pipeline_factory):
    p = pipeline_factory()
    p.start_dispatcher()
    assert http_ok(f"http://127.0.0.1:{p.metrics_port}/metrics")


# --- batch mode (the local stack's default) ---------------------------------------------------

BATCH_CT = "application/cloudevents-batch+json"


def delivered_events(reqs) -> list[dict]:
    """Structured events of every 2xx batch, in the order the sink answered them."""
    return [e for r in ok(reqs) for e in r["events"]]


def wait_committed(p: Pipeline, total: int) -> None:
    deadline = time.monotonic() + 10
    while sum(v or 0 for v in p.committed().values()) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum(v or 0 for v in p.committed().values()) == total


def test_batch_delivery_keeps_order_and_commits(pipeline_factory):
    p = pipeline_factory(mode="batch")
    evs = events(60)
    p.produce(evs, raw=[b'{"hello": 1}', b"\x00not json"])
    p.start_dispatcher()
    got = p.wait_for(lambda r: len(delivered_events(r)) >= 62)
    assert all(r["headers"]["content-type"] == BATCH_CT for r in got)
    assert len(ok(got)) < 62  # records travel together, not one POST each
    delivered = delivered_events(got)
    # what the processor decodes from the batches is exactly what was produced, each once
    decoded = [d.envelope for d in decode_batch([e for e in delivered if e["type"] == "mcp.request"])]
    assert sorted(decoded, key=lambda e: e.id) == sorted(evs, key=lambda e: e.id)
    # per key (= per partition) in production order, across batches
    order: dict[str, list[int]] = {}
    for e in delivered:
        if e["type"] == "mcp.request":
            order.setdefault(e["data"]["server"], []).append(e["data"]["i"])
    assert order == {f"s{k}": list(range(k, 60, 3)) for k in range(3)}
    for e in delivered:
        assert e["kafkatopic"] == p.topic and e["kafkapartition"].isdigit() and e["kafkaoffset"].isdigit()
    raw = [e for e in delivered if e["type"] == "dev.knative.kafka.event"]
    assert len(raw) == 2
    by_data = {("data" in e): e for e in raw}
    assert by_data[True]["data"] == {"hello": 1} and by_data[True]["key"] == "raw-key"
    assert by_data[True]["source"] == f"/apis/v1/namespaces/mcp-sentinel/kafkasources/mcp-events#{p.topic}"
    assert base64.b64decode(by_data[False]["data_base64"]) == b"\x00not json"  # not JSON: sent as bytes
    assert all("traceparent" in r["headers"] for r in got)
    assert {r["headers"].get("authorization") for r in got} == {f"Bearer {StackConfig().processor_delivery_token}"}
    wait_committed(p, 62)
    assert p.metric("dispatcher_delivered_total") == 62
    assert p.metric("dispatcher_batch_records_count") == len(ok(got))


def test_batch_poison_records_are_dead_lettered_alone_and_neighbours_delivered_in_order(pipeline_factory):
    p = pipeline_factory(mode="batch")
    evs = [new_envelope("mcp-gateway", "mcp.request", {"namespace": "ns", "server": "s0", "i": i,
                                                       **({"poison": True} if i in (7, 13) else {})})
           for i in range(20)]  # fmt: skip
    p.produce(evs)
    p.start_dispatcher()
    p.wait_for(lambda r: len(delivered_events(r)) >= 18)
    wait_dead_lettered(p, 2)
    dlq = read_topic(p.stack.bootstrap, p.dlq, 2)
    assert sorted(dict(r.headers)["ce_id"].decode() for r in dlq) == sorted([evs[7].id, evs[13].id])
    for r in dlq:
        h = dict(r.headers)
        assert h["dlq-reason"] == b"http_400" and h["dlq-status"] == b"400" and h["dlq-attempts"] == b"1"
        assert h["dlq-delivery-mode"] == b"batch" and h["dlq-source-topic"] == p.topic.encode()
        assert r.key == b"ns/s0" and json.loads(r.value)["poison"] is True
    wait_committed(p, 20)
    got = p.received()
    delivered = delivered_events(got)
    assert [e["data"]["i"] for e in delivered] == [i for i in range(20) if i not in (7, 13)]  # once each, in order
    # the refused record is isolated, never retried as-is: every 400 contained a poison record
    assert all(any(e["data"].get("poison") for e in r["events"]) for r in got if r["status"] == 400)
    assert p.metric("dispatcher_batch_bisections_total") >= 2
    assert p.metric("dispatcher_dead_lettered_total") == 2
    assert p.metric("dispatcher_delivered_total") == 18


def test_batch_sink_down_then_up_delivers_everything_once(pipeline_factory):
    p = pipeline_factory(mode="batch", dispatcher_env={"DELIVERY_RETRY": "50", "DELIVERY_MAX_BACKOFF": "PT0.3S"})
    p.stack.supervisor.stop(p.sink.name)
    evs = events(45)
    p.produce(evs)
    p.start_dispatcher()
    deadline = time.monotonic() + 20
    while p.metric("dispatcher_retries_total") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert p.metric("dispatcher_retries_total") >= 3  # connection refused, retried with backoff
    assert sum(v or 0 for v in p.committed().values()) == 0  # nothing committed while undelivered
    p.stack.supervisor.start(p.sink)
    got = p.wait_for(lambda r: len(delivered_events(r)) >= 45)
    ids = [e["id"] for e in delivered_events(got)]
    assert sorted(ids) == sorted(e.id for e in evs)  # each accepted exactly once
    wait_committed(p, 45)
    assert read_topic(p.stack.bootstrap, p.dlq, 1, timeout=1.5) == []
    order: dict[str, list[int]] = {}
    for e in delivered_events(p.received()):
        order.setdefault(e["data"]["server"], []).append(e["data"]["i"])
    assert order == {f"s{k}": list(range(k, 45, 3)) for k in range(3)}


def test_batch_chunks_respect_event_and_byte_bounds():
    from types import SimpleNamespace

    from localstack.kafka_source.delivery import Delivery

    s = DispatcherSettings.from_env({"SINK_URL": "http://x/", "MAX_BATCH_EVENTS": "4", "MAX_BATCH_BYTES": "2048"})
    d = Delivery(s, None, None, None, None, None)  # chunking touches neither HTTP nor metrics

    def rec(offset: int, size: int):
        return SimpleNamespace(topic="t", partition=0, offset=offset, timestamp=0, key=None,
                               value=json.dumps({"pad": "x" * size}).encode(), headers=[])

    chunks = d.chunks([rec(i, 10) for i in range(10)])
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [r.offset for c in chunks for r, _ in c] == list(range(10))
    big = d.chunks([rec(0, 700), rec(1, 700), rec(2, 5000), rec(3, 10)])
    assert [[r.offset for r, _ in c] for c in big] == [[0, 1], [2], [3]]  # an oversize record goes alone
    for c in big[:1]:
        assert len(b"[" + b",".join(f for _, f in c) + b"]") <= 2048
        assert [e["kafkaoffset"] for e in json.loads(b"[" + b",".join(f for _, f in c) + b"]")] == ["0", "1"]


def test_delivery_mode_setting():
    assert DispatcherSettings.from_env({"SINK_URL": "http://x/"}).delivery_mode == "batch"
    assert DispatcherSettings.from_env({"SINK_URL": "http://x/", "DELIVERY_MODE": "Single"}).delivery_mode == "single"
    with pytest.raises(SettingsError, match="DELIVERY_MODE"):
        DispatcherSettings.from_env({"SINK_URL": "http://x/", "DELIVERY_MODE": "bulk"})
    with pytest.raises(SettingsError, match="MAX_BATCH_EVENTS"):
        DispatcherSettings.from_env({"SINK_URL": "http://x/", "MAX_BATCH_EVENTS": "0"})
    assert dispatcher_part.dispatcher_env(StackConfig(data_dir=Path("/nonexistent")))["DELIVERY_MODE"] == "batch"
