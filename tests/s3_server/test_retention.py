"""Retention of the local broker's batches (issue 17, item 3): bounded data, never below a consumer's offset.

The sweep rules on a synthetic tansu layout, then the real thing: tansu on the `s3` part with
retention switched on, a consumer group that commits part of a partition, and a check that exactly
the batches below its offset go, that readers and producers carry on, and that a partition no group
has committed on keeps everything.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

from localstack.config import Ports, StackConfig
from localstack.parts import kafka as kafka_part
from localstack.parts import s3 as s3_part
from localstack.s3_server.retention import RetentionPolicy, sweep
from localstack.s3_server.settings import S3ServerSettings
from localstack.s3_server.store import FileStore
from localstack.supervisor import Supervisor

C = "clusters/c"


def _layout(store: FileStore, offsets: list[int], committed: dict[str, int | str], partition: int = 0) -> None:
    for o in offsets:
        store.put("tansu", f"{C}/topics/t/partitions/{partition:010d}/records/{o:020d}.batch", b"x" * 100)
    for group, off in committed.items():
        body = json.dumps({"offset": off}).encode() if isinstance(off, int) else off.encode()
        store.put("tansu", f"{C}/groups/consumers/{group}/offsets/t/partitions/{partition:010d}.json", body)


def _batches(store: FileStore, partition: int = 0) -> list[int]:
    prefix = f"{C}/topics/t/partitions/{partition:010d}/records/"
    return [int(k.removeprefix(prefix).removesuffix(".batch")) for k in store.keys("tansu", prefix)]


def test_sweep_deletes_only_below_every_groups_offset(tmp_path: Path) -> None:
    store = FileStore(tmp_path, ["tansu"])
    _layout(store, [0, 5, 10, 15, 20], {"a": 12, "b": 16})
    _layout(store, [0, 5, 10], {}, partition=1)  # no group: kept whole
    r = sweep(store, "tansu", RetentionPolicy(retention_ms=0))
    # Batch 0 ends before 5, batch 5 before 10 <= 12: both gone. Batch 10 runs to 14 >= 12: kept.
    assert _batches(store) == [10, 15, 20] and r.deleted_batches == 2 and r.held_by_consumers == 2
    assert _batches(store, 1) == [0, 5, 10] and r.unconsumed_partitions == ["t/1"]


def test_sweep_never_deletes_the_newest_batch_and_respects_age_and_bytes(tmp_path: Path) -> None:
    store = FileStore(tmp_path, ["tansu"])
    _layout(store, [0, 5, 10], {"a": 10_000})
    assert sweep(store, "tansu", RetentionPolicy(retention_ms=3_600_000)).deleted_batches == 0  # all young
    assert sweep(store, "tansu", RetentionPolicy(retention_bytes=250)).deleted_batches == 1  # 300 B -> 200 B
    assert _batches(store) == [5, 10]
    assert sweep(store, "tansu", RetentionPolicy(retention_ms=0)).deleted_batches == 1
    assert _batches(store) == [10]  # the newest stays even though the group is past it
    assert sweep(store, "tansu", RetentionPolicy()).deleted_batches == 0  # off by default


def test_an_unreadable_offset_holds_the_partition(tmp_path: Path) -> None:
    store = FileStore(tmp_path, ["tansu"])
    _layout(store, [0, 5, 10], {"a": 100, "broken": "{not json"})
    assert sweep(store, "tansu", RetentionPolicy(retention_ms=0)).deleted_batches == 0
    assert _batches(store) == [0, 5, 10]


def test_settings_parse_and_refuse_retention_values() -> None:
    base = {"S3_SERVER_DIR": "/tmp/x"}
    s = S3ServerSettings.from_env({**base, "S3_SERVER_TANSU_RETENTION_MS": "60000",
                                   "S3_SERVER_TANSU_RETENTION_BYTES": "1048576",
                                   "S3_SERVER_TANSU_RETENTION_INTERVAL": "2.5"})
    assert s.retention == RetentionPolicy(60_000, 1_048_576, 2.5)
    assert not S3ServerSettings.from_env(base).retention.enabled
    for name, bad in (("S3_SERVER_TANSU_RETENTION_MS", "soon"), ("S3_SERVER_TANSU_RETENTION_BYTES", "-2"),
                      ("S3_SERVER_TANSU_RETENTION_INTERVAL", "0")):
        with pytest.raises(ValueError, match=name):
            S3ServerSettings.from_env({**base, name: bad})


def _records_on_disk(cfg: StackConfig, topic: str, partition: int) -> list[int]:
    folder = cfg.path("s3", "tansu", "clusters", "tansu_cluster", "topics", topic, "partitions",
                      f"{partition:010d}", "records")
    return sorted(int(p.name.removesuffix(".batch")) for p in folder.glob("*.batch")) if folder.is_dir() else []


def test_tansu_keeps_working_while_the_store_deletes_consumed_batches(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    [s3] = s3_part.components(cfg)
    s3 = dataclasses.replace(s3, env={**s3.env, "S3_SERVER_TANSU_RETENTION_MS": "0",
                                      "S3_SERVER_TANSU_RETENTION_INTERVAL": "0.3"})
    boot = kafka_part.bootstrap(cfg)
    tp = TopicPartition("mcp.events", 0)
    with Supervisor(cfg) as sup:
        sup.start_all([s3, *kafka_part.components(cfg)])
        producer = KafkaProducer(bootstrap_servers=boot, acks="all", enable_idempotence=False, linger_ms=0)
        for i in range(40):  # one batch per record: acknowledged one by one
            producer.send("mcp.events", b"r%d" % i, partition=0).get(10)
        for i in range(5):
            producer.send("mcp.events", b"o%d" % i, partition=1).get(10)
        group = KafkaConsumer(bootstrap_servers=boot, group_id="g1", enable_auto_commit=False)
        group.assign([tp])
        group.commit({tp: OffsetAndMetadata(25, "", -1)})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _records_on_disk(cfg, "mcp.events", 0)[:1] != [25]:
            time.sleep(0.2)
        assert _records_on_disk(cfg, "mcp.events", 0) == list(range(25, 40))
        assert _records_on_disk(cfg, "mcp.events", 1) == list(range(5))  # no group committed there
        stats = httpx.get(cfg.url("s3", "/_sentinel/stats"), timeout=10).json()
        assert stats["retention"]["deleted_batches"] == 25 and "mcp.events/1" in stats["retention"][
            "unconsumed_partitions"]
        # The group resumes at its offset; a reader from the beginning gets what is left, in order.
        group.seek(tp, 25)
        got = [r.offset for recs in group.poll(5000).values() for r in recs]
        assert got[:3] == [25, 26, 27]
        group.close()
        reader = KafkaConsumer(bootstrap_servers=boot, enable_auto_commit=False, auto_offset_reset="earliest")
        reader.assign([tp])
        reader.seek_to_beginning(tp)
        seen: list[int] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not seen or seen[-1] < 39):
            seen += [r.offset for recs in reader.poll(1000).values() for r in recs]
        reader.close()
        assert seen == list(range(25, 40))
        # A broker restart after the deletions: the partition continues at 40, nothing rewritten.
        producer.close()
        sup.restart("kafka", kill=True)
        producer = KafkaProducer(bootstrap_servers=boot, acks="all", enable_idempotence=False)
        assert producer.send("mcp.events", b"after", partition=0).get(10).offset == 40
        producer.close()
