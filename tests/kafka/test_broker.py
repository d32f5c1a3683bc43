"""The local broker part: durable storage through s3rver survives a restart of both processes."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from mcp_sentinel.kafka import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC, broker_reachable, ensure_topics
from mcp_sentinel.stack.parts import kafka as kafka_part
from mcp_sentinel.stack.parts import s3 as s3_part
from tests.fixtures.kafka import read_topic, start_kafka_stack


def test_topics_messages_and_offsets_survive_broker_restart(tmp_path):
    if s3_part.s3rver_binary() is None:
        pytest.skip("npm s3rver not installed: the broker runs in memory (see ./dev)")
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
    if s3_part.s3rver_binary() is None:
        pytest.skip("npm s3rver not installed: the broker runs in memory (see ./dev)")
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
