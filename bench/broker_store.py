"""Local broker throughput by storage: tansu on our S3 server vs tansu in memory (and vs npm s3rver if present).

Each side is the `kafka` part (tansu behind its warm-up gate) started through the Supervisor; only
the storage differs. `memory://` is the same-run baseline (no storage I/O at all); `s3rver` is the
store this server replaced, measured only when `node_modules/.bin/s3rver` is still installed.
Every round produces `events` records of 300 B with aiokafka (acks=all) to a fresh topic, then
reads them back from offset 0; rounds alternate between sides because the machine is shared.
Run: `python -m bench.broker_store [events] [rounds]`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped]

from localstack.config import REPO_ROOT, Ports, StackConfig
from localstack.parts import kafka as kafka_part
from localstack.parts import s3 as s3_part
from localstack.supervisor import Component, Supervisor
from mcp_sentinel.kafka import ensure_topics

PAYLOAD = b"x" * 300


def _side(name: str, data: Path) -> tuple[Supervisor, str] | None:
    cfg = StackConfig(data_dir=data / name, ports=Ports.free())
    [broker] = kafka_part.components(cfg)
    comps: list[Component]
    if name == "memory":
        comps = [dataclasses.replace(broker, env={**broker.env, "KAFKA_GATE_STORAGE": "memory://tansu/"})]
    elif name == "s3-server":
        comps = [*s3_part.components(cfg), broker]
    else:
        binary = REPO_ROOT / "node_modules" / ".bin" / "s3rver"
        if not binary.exists() or not shutil.which("node"):
            return None
        directory = cfg.path("s3")
        directory.mkdir(parents=True, exist_ok=True)
        s3rver = Component(name="s3", health_port=cfg.ports.s3, argv=[
            str(binary), "--directory", str(directory), "--address", cfg.host, "--port", str(cfg.ports.s3),
            "--configure-bucket", "tansu", "--silent"])
        creds = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"}  # s3rver checks signatures
        comps = [s3rver, dataclasses.replace(broker, env={**broker.env, **creds})]
    sup = Supervisor(cfg)
    sup.start_all(comps)
    return sup, kafka_part.bootstrap(cfg)


async def _round(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        t0 = time.perf_counter()
        futures = [await producer.send(topic, PAYLOAD, key=b"%d" % (i % 16)) for i in range(n)]
        await asyncio.gather(*futures)
        produce = n / (time.perf_counter() - t0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got, t0 = 0, time.perf_counter()
        deadline = t0 + 120
        while got < n and time.perf_counter() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            got += sum(len(b) for b in batches.values())
        consume = got / (time.perf_counter() - t0)
        if got < n:
            raise RuntimeError(f"read back {got} of {n} records")
    finally:
        await consumer.stop()
    return produce, consume


def main(events: int = 20_000, rounds: int = 3) -> None:
    """Print produce and read-back rates per storage, best and spread, with ratios against memory."""
    data = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    sides: dict[str, tuple[Supervisor, str]] = {}
    try:
        for name in ("memory", "s3-server", "s3rver"):
            started = _side(name, data)
            if started is not None:
                sides[name] = started
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for r in range(rounds):
            for name, (_sup, boot) in sides.items():
                topic = f"bench-{r}"
                ensure_topics([boot], [topic], partitions=3)
                results[name].append(asyncio.run(_round(boot, topic, events)))
        base = max(p for p, _ in results["memory"]), max(c for _, c in results["memory"])
        print(f"{events} records x {rounds} rounds, aiokafka acks=all, 300 B")
        for name, rs in results.items():
            prod, cons = [p for p, _ in rs], [c for _, c in rs]
            print(f"  {name:10s} produce best {max(prod):8,.0f}/s (spread {min(prod):,.0f}-{max(prod):,.0f}, "
                  f"x{max(prod) / base[0]:.2f} memory)  read back best {max(cons):8,.0f}/s "
                  f"(spread {min(cons):,.0f}-{max(cons):,.0f}, x{max(cons) / base[1]:.2f} memory)  "
                  f"median produce {statistics.median(prod):,.0f}/s")
    finally:
        for sup, _ in sides.values():
            sup.stop_all()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
