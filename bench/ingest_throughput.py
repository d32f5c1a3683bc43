"""Ingest → Kafka throughput per instance (batch mode) vs the raw kafka-python producer.

All sides produce the same CloudEvents Kafka-binary records (same encoder) to a real tansu broker
with acks=all, measured in the same run: the raw kafka-python producer (the issue's baseline:
ingest ≥ 80% of it and ≥ 10k events/s per instance), and the raw aiokafka producer, the client
ingest itself uses, whose ratio is ingest's true overhead (HTTP, decoding, auth, tracing).
Each side is measured `rounds` times; best and spread are printed because the machine is shared.
Run: `python -m bench.ingest_throughput [events] [batch] [clients] [rounds]`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from kafka import KafkaProducer

from localstack.config import Ports, StackConfig
from localstack.parts import ingest as ingest_part
from localstack.parts import kafka as kafka_part
from localstack.parts import s3 as s3_part
from localstack.supervisor import Supervisor
from mcp_sentinel.cloudevents_binary import to_kafka_binary
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, encode_batch
from mcp_sentinel.envelope import new_envelope
from mcp_sentinel.kafka import ensure_topics


def sample(i: int):
    return new_envelope("mcp-gateway", "mcp.request", {
        "namespace": "bench", "server": f"srv{i % 8}", "method": "POST", "path": "/mcp", "status": 200,
        "latency_ms": 3, "decision": "allow", "reason": "allowed", "rpc_method": "tools/call", "tool_name": "add",
        "human_id": "alice", "agent_id": "agent-1", "team_id": "team-a", "i": i})


def raw_producer(bootstrap: str, topic: str, n: int) -> float:
    events = [sample(i) for i in range(n)]
    p = KafkaProducer(bootstrap_servers=[bootstrap], acks="all", linger_ms=5, batch_size=256 * 1024)
    t0 = time.perf_counter()
    futures = []
    for e in events:
        rec = to_kafka_binary(e)  # same encoding work as ingest does
        futures.append(p.send(topic, key=rec.key, value=rec.value, headers=rec.headers))
    for f in futures:
        f.get(timeout=60)
    dt = time.perf_counter() - t0
    p.close()
    return n / dt


def raw_aiokafka(bootstrap: str, topic: str, n: int) -> float:
    events = [sample(i) for i in range(n)]

    async def run() -> float:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
        await p.start()
        try:
            t0 = time.perf_counter()
            futures = []
            for e in events:
                rec = to_kafka_binary(e)
                futures.append(await p.send(topic, key=rec.key, value=rec.value, headers=rec.headers))
            await asyncio.gather(*futures)
            return n / (time.perf_counter() - t0)
        finally:
            await p.stop()

    return asyncio.run(run())


def through_ingest(url: str, key: str, n: int, batch: int, clients: int) -> float:
    bodies = [encode_batch([sample(i) for i in range(s, min(n, s + batch))]) for s in range(0, n, batch)]
    headers = {"content-type": BATCH_CONTENT_TYPE, "x-api-key": key}

    def post(chunk: list[bytes]) -> int:
        accepted = 0
        with httpx.Client(timeout=60) as c:
            for body in chunk:
                r = c.post(url, content=body, headers=headers)
                r.raise_for_status()
                accepted += r.json()["accepted"]
        return accepted

    chunks = [bodies[i::clients] for i in range(clients)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(post, chunks))
    dt = time.perf_counter() - t0
    assert total == n, (total, n)
    return n / dt


def _fmt(xs: list[float]) -> str:
    return f"best {max(xs):8.0f}  median {statistics.median(xs):8.0f}  min {min(xs):8.0f} events/s"


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    raw: list[float] = []
    aio: list[float] = []
    via: list[float] = []
    cpu_us: list[float] = []  # ingest process CPU per event: robust to a busy machine, unlike events/s
    with tempfile.TemporaryDirectory() as tmp:
        cfg = StackConfig(data_dir=Path(tmp), ports=Ports.free())
        with Supervisor(cfg) as sup:
            sup.start_all([*s3_part.components(cfg), *kafka_part.components(cfg)])
            [ingest] = ingest_part.components(cfg)
            env = {**ingest.env, "KAFKA_TOPIC": "bench.ingest", "LOG_LEVEL": "WARNING"}
            proc = psutil.Process(sup.start(dataclasses.replace(ingest, env=env)).process.pid)
            boot = kafka_part.bootstrap(cfg)
            ensure_topics([boot], ["bench.raw", "bench.aio", "bench.ingest"])
            url = cfg.url("ingest", "/events")
            # warm-up every path (connections, metadata, producer ids)
            raw_producer(boot, "bench.raw", 500)
            raw_aiokafka(boot, "bench.aio", 500)
            through_ingest(url, cfg.ingest_api_key, 1000, batch, 1)
            for _ in range(rounds):  # interleaved, so load swings hit every side alike
                raw.append(raw_producer(boot, "bench.raw", n))
                aio.append(raw_aiokafka(boot, "bench.aio", n))
                before = proc.cpu_times()
                via.append(through_ingest(url, cfg.ingest_api_key, n, batch, clients))
                after = proc.cpu_times()
                cpu_us.append((after.user + after.system - before.user - before.system) / n * 1e6)
    ratios = [v / r for v, r in zip(via, raw, strict=True)]
    aio_ratios = [v / a for v, a in zip(via, aio, strict=True)]
    print(f"events={n} batch={batch} clients={clients} rounds={rounds}")
    print(f"raw kafka-python producer : {_fmt(raw)}")
    print(f"raw aiokafka producer     : {_fmt(aio)}")
    print(f"ingest (batch mode)       : {_fmt(via)}")
    print(f"ratio ingest/kafka-python : best {max(ratios):.2f}  median {statistics.median(ratios):.2f}  "
          f"min {min(ratios):.2f}  (target >= 0.80)")
    print(f"ratio ingest/aiokafka     : best {max(aio_ratios):.2f}  median {statistics.median(aio_ratios):.2f}  "
          f"min {min(aio_ratios):.2f}  (ingest's own overhead)")
    print(f"ingest CPU per event      : best {min(cpu_us):.1f} us  median {statistics.median(cpu_us):.1f} us "
          f"(=> {1e6 / min(cpu_us):.0f} events/s per core-second)")
    print(f"absolute target 10k/s     : {'met' if statistics.median(via) >= 10000 else 'NOT met'} (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
