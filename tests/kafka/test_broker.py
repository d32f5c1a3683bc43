"""The local broker part: durable storage through the local S3 server survives a restart of both processes."""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from localstack.parts import kafka as kafka_part
from localstack.parts import s3 as s3_part
from mcp_sentinel.kafka import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC, broker_reachable, ensure_topics
from tests.fixtures.kafka import read_topic, start_kafka_stack


def test_topics_messages_and_offsets_survive_broker_restart(tmp_path):
    cfg, sup = start_kafka_stack(tmp_path)
    with sup:
        boot = f"{cfg.host}:{cfg.ports.kafka}"
        admin_topics = KafkaConsumer(bootstrap_servers=[boot]).topics()
        assert {DEFAULT_TOPIC, DEFAULT_DLQ_TOPIC} <= admin_topics
        ensure_topics([boot], ["durable"])
        p = KafkaProducer(bootstrap_servers=[boot], acks="all")
        for i in range(20):
            p.send("durable", key=b"k", value=b"m%d" % i, headers=[("ce_id", b"%d" % i)])
        p.flush()
        p.close()
        c = KafkaConsumer(bootstrap_servers=[boot], group_id="g1", enable_auto_commit=False)
        part = next(iter(read_topic(boot, "durable", 20))).partition
        c.commit({TopicPartition("durable", part): OffsetAndMetadata(5, "", -1)})
        c.close()

        sup.stop("kafka")
        assert not broker_reachable([boot], timeout=0.5)
        sup.restart("s3")
        [broker] = kafka_part.components(cfg)
        sup.start(broker)

        recs = read_topic(boot, "durable", 20)
        assert [r.value for r in sorted(recs, key=lambda r: r.offset)] == [b"m%d" % i for i in range(20)]
        assert dict(recs[0].headers)["ce_id"] == b"0"
        c = KafkaConsumer(bootstrap_servers=[boot], group_id="g1", enable_auto_commit=False)
        assert c.committed(TopicPartition("durable", part)) == 5
        c.close()


def test_unreachable_broker_detected():
    assert not broker_reachable(["127.0.0.1:1"], timeout=0.3)
    assert not broker_reachable([], timeout=0.3)


def test_first_produce_after_restart_does_not_overwrite_stored_records(tmp_path):
    """tansu 0.6 restores a partition's end offset only on a fetch, so a produce that came first after a
    restart overwrote offset 0; the `kafka` part reads every partition before it reports healthy."""
    cfg, sup = start_kafka_stack(tmp_path)
    with sup:
        boot = f"{cfg.host}:{cfg.ports.kafka}"
        ensure_topics([boot], ["overwrite"])
        p = KafkaProducer(bootstrap_servers=[boot], acks="all")
        first = p.send("overwrite", key=b"k", value=b"before").get(10)
        p.close()
        sup.stop("kafka")
        sup.restart("s3")
        [broker] = kafka_part.components(cfg)
        sup.start(broker)
        p = KafkaProducer(bootstrap_servers=[boot], acks="all")
        second = p.send("overwrite", key=b"k", value=b"after").get(10)  # no fetch in between
        p.close()
        recs = sorted(read_topic(boot, "overwrite", 2, timeout=8), key=lambda r: r.offset)
        assert (first.partition, first.offset) == (second.partition, 0)
        assert [r.value for r in recs] == [b"before", b"after"]


def test_bare_tansu_first_produce_after_sigkill_continues_the_partition(tmp_path):
    """The root cause, without the gate: tansu's first write after a restart is a conditional create of
    the partition's watermark; the local S3 server refuses it (412), so tansu re-reads the stored
    watermark and appends. s3rver ignored the condition and tansu rewrote the partition from offset 0."""
    from localstack.config import Ports, StackConfig
    from localstack.kafka_broker import tansu_binary
    from localstack.supervisor import Component, Supervisor

    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    boot = kafka_part.bootstrap(cfg)
    bare = Component(
        name="tansu", health_port=cfg.ports.kafka, env=s3_part.s3_env(cfg),
        argv=[str(tansu_binary()), "broker", "--listener-url", f"tcp://{boot}", "--advertised-listener-url",
              f"tcp://{boot}", "--storage-engine", kafka_part.STORAGE])
    with Supervisor(cfg) as sup:
        sup.start_all([*s3_part.components(cfg), bare])
        ensure_topics([boot], ["bare"], partitions=1)
        p = KafkaProducer(bootstrap_servers=[boot], acks="all")
        before = [p.send("bare", value=b"b%d" % i).get(10).offset for i in range(5)]
        p.close()
        sup.restart("tansu", kill=True)
        p = KafkaProducer(bootstrap_servers=[boot], acks="all")
        after = p.send("bare", value=b"after").get(10).offset  # no fetch came first
        p.close()
        recs = sorted(read_topic(boot, "bare", 6, timeout=10), key=lambda r: r.offset)
    assert before == [0, 1, 2, 3, 4] and after == 5
    assert [r.value for r in recs] == [b"b0", b"b1", b"b2", b"b3", b"b4", b"after"]


def _produce_continuously(boot: str, topic: str, stop: threading.Event, acked: list[bytes],
                          failed: list[bytes]) -> None:
    """Send numbered records until `stop`; collect those the broker acknowledged (acks=all)."""
    p = KafkaProducer(bootstrap_servers=[boot], acks="all", linger_ms=2, retries=0, request_timeout_ms=5000,
                      reconnect_backoff_ms=20, reconnect_backoff_max_ms=200, max_block_ms=5000)
    lock = threading.Lock()

    def done(value: bytes, ok: bool) -> None:
        with lock:
            (acked if ok else failed).append(value)

    i = 0
    try:
        while not stop.is_set():
            value = b"r%06d" % i
            i += 1
            try:
                fut = p.send(topic, key=b"%d" % (i % 7), value=value)
            except Exception:
                failed.append(value)  # not even queued (metadata unavailable while the broker was down)
                time.sleep(0.02)
                continue
            fut.add_callback(lambda _md, v=value: done(v, True))
            fut.add_errback(lambda _exc, v=value: done(v, False))
            time.sleep(0.002)
        p.flush(timeout=20)
    finally:
        p.close(timeout=5)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_broker_restart_under_live_producer_keeps_every_acked_record(tmp_path, kill):
    """A producer keeps sending through a broker restart (graceful and SIGKILL): every record the broker
    acknowledged, before or after the restart, is still readable afterwards, exactly once."""
    cfg, sup = start_kafka_stack(tmp_path)
    with sup:
        boot = kafka_part.bootstrap(cfg)
        ensure_topics([boot], ["live"])
        stop, acked, failed = threading.Event(), [], []
        producer = threading.Thread(target=_produce_continuously, args=(boot, "live", stop, acked, failed))
        producer.start()
        try:
            deadline = time.monotonic() + 20
            while len(acked) < 300 and time.monotonic() < deadline:
                time.sleep(0.05)
            before = len(acked)
            assert before >= 300, "the producer did not get going"
            sup.restart("kafka", kill=kill)
            deadline = time.monotonic() + 30
            while len(acked) < before + 300 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            producer.join(60)
        assert len(acked) >= before + 300, "the producer did not resume after the restart"
        # to_end: records written but not acknowledged (a produce cut by the restart) are stored too,
        # so reading just len(acked) records could stop before the end of some partition.
        recs = read_topic(boot, "live", len(acked), timeout=30, to_end=True)
        stored = [r.value for r in recs]
        assert len(stored) == len(set(stored)), "a record is stored twice"
        lost = sorted(set(acked) - set(stored))
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged records lost, e.g. {lost[:5]}"


def test_gate_holds_other_processes_until_released_and_relays_its_own(tmp_path):
    """The gate relays its own process's connections at once, holds another process's until release()."""
    import asyncio
    import subprocess
    import sys

    from localstack.kafka_gate import Gate

    async def scenario() -> None:
        async def echo(reader, writer):
            while data := await reader.read(65536):
                writer.write(b"echo:" + data)
                await writer.drain()
            writer.close()

        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        gate = Gate("127.0.0.1", upstream.sockets[0].getsockname()[1])
        server = await asyncio.get_running_loop().create_server(gate.protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        # Another process: it connects and sends, and must hear nothing while the gate is closed.
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c",
            "import socket,sys,time\n"
            f"s=socket.create_connection(('127.0.0.1',{port}));s.sendall(b'ping');s.settimeout(20)\n"
            "t=time.monotonic();d=s.recv(100);print(d.decode(), round(time.monotonic()-t, 2))",
            stdout=subprocess.PIPE)
        # Our own connection goes through while the other is held.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"mine")
        assert await asyncio.wait_for(reader.read(100), 10) == b"echo:mine"
        deadline = asyncio.get_running_loop().time() + 10
        while gate.held < 1 and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - held is a plain counter
            await asyncio.sleep(0.02)
        assert gate.held == 1
        await asyncio.sleep(1.0)
        assert client.returncode is None, "the held client got an answer before release"
        gate.release()
        out, _ = await asyncio.wait_for(client.communicate(), 20)
        data, waited = out.decode().split()
        assert data == "echo:ping" and float(waited) >= 1.0
        assert gate.held == 0
        writer.close()
        server.close()
        upstream.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("env", "problem"), [
    ({"KAFKA_GATE_LISTEN": "9092"}, "host:port"),
    ({"KAFKA_GATE_LISTEN": "127.0.0.1:x"}, "host:port"),
    ({"KAFKA_GATE_PARTITIONS": "0"}, ">= 1"),
])
def test_gate_settings_reject_bad_values(env, problem, capsys):
    from localstack.kafka_gate import GateSettings, main

    with pytest.raises(ValueError, match=problem):
        GateSettings.from_env(env)
    assert main(env) == 2
    assert problem in capsys.readouterr().err


def test_gate_settings_from_env():
    from localstack.kafka_gate import GateSettings

    s = GateSettings.from_env({"KAFKA_GATE_LISTEN": "127.0.0.1:19092", "KAFKA_GATE_TOPICS": "a, b,,",
                               "KAFKA_GATE_STORAGE": "s3://tansu/", "KAFKA_GATE_PARTITIONS": "2"})
    assert (s.host, s.port, s.topics, s.partitions, s.storage) == ("127.0.0.1", 19092, ("a", "b"), 2, "s3://tansu/")


def test_gate_never_hands_tansu_its_own_public_port(tmp_path, monkeypatch):
    """CI once saw tansu told to listen on the gate's public port (AddrInUse, tansu exit 0): the gate
    process picked the internal port before binding the public one, and its free_port() knew nothing of
    the port the parent chose. The port picker is steered to offer the public port first."""
    import asyncio
    import itertools
    import socket
    import stat

    import localstack.config as config
    from localstack.kafka_gate import GateSettings, run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        public = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        other = s.getsockname()[1]
    offers = itertools.chain([public, public], itertools.repeat(other))
    monkeypatch.setattr(config.random, "randint", lambda low, high: next(offers))
    monkeypatch.setattr(config, "_PICKED", set())
    argv_file = tmp_path / "argv"
    fake = tmp_path / "tansu"
    fake.write_text(f'#!/bin/sh\necho "$@" > {argv_file}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    code = asyncio.run(run(GateSettings(port=public, tansu=str(fake), storage="memory://t/")))

    assert code == 0
    argv = argv_file.read_text().split()
    assert argv[argv.index("--listener-url") + 1] == f"tcp://127.0.0.1:{other}"
    assert argv[argv.index("--advertised-listener-url") + 1] == f"tcp://127.0.0.1:{public}"
