"""The `kafka` part: the tansu broker on loopback, durable in the local S3 server, with the pipeline's topics.

Storage is `s3://tansu/` on the `s3` part (`localstack.s3_server`, which honours conditional
writes and writes atomically - what tansu's S3 engine needs to never overwrite a partition), so
topics, messages and committed offsets survive restarts of either process.
The process is `python -m localstack.kafka_gate`: tansu on an internal port behind a TCP gate on
the public port that lets no other client in until the topics exist and every partition was read
(a second line of defence since the store honours conditional writes; on s3rver the first produce
after a restart overwrote stored records). The health check then creates or finds
`mcp.events` and `mcp.events.dlq` (3 partitions) through the gate, so the component is only
"ready" once producers and the dispatcher can use them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

from localstack.config import StackConfig
from localstack.kafka_broker import tansu_binary
from localstack.parts.s3 import s3_env
from localstack.supervisor import Component, tcp_open
from mcp_sentinel.kafka import DEFAULT_DLQ_TOPIC, DEFAULT_PARTITIONS, DEFAULT_TOPIC
from mcp_sentinel.kafka.admin import KafkaError, ensure_topics

TOPICS = (DEFAULT_TOPIC, DEFAULT_DLQ_TOPIC)
STORAGE = "s3://tansu/"  # bucket `tansu` on the `s3` part


def bootstrap(cfg: StackConfig) -> str:
    """`KAFKA_BROKERS` value for the local broker."""
    return f"{cfg.host}:{cfg.ports.kafka}"


def _ready(cfg: StackConfig) -> Callable[[], bool]:
    def check() -> bool:
        if not tcp_open(cfg.ports.kafka, cfg.host):
            return False
        with contextlib.suppress(KafkaError, OSError):
            # Passes only once the gate is open, i.e. after its warm-up read every partition.
            ensure_topics([bootstrap(cfg)], TOPICS, partitions=DEFAULT_PARTITIONS, timeout=5.0)
            return True
        return False

    return check


def components(cfg: StackConfig) -> list[Component]:
    """The tansu broker behind its warm-up gate (one process group)."""
    env: dict[str, str] = {
        "KAFKA_GATE_LISTEN": bootstrap(cfg),
        "KAFKA_GATE_TOPICS": ",".join(TOPICS),
        "KAFKA_GATE_PARTITIONS": str(DEFAULT_PARTITIONS),
        "KAFKA_GATE_TANSU": str(tansu_binary()),
        "KAFKA_GATE_STORAGE": STORAGE,
        **s3_env(cfg),
    }
    return [
        Component(
            name="kafka",
            argv=[sys.executable, "-m", "localstack.kafka_gate"],
            env=env,
            health_check=_ready(cfg),
            startup_timeout=60.0,
            description=f"(tansu behind its warm-up gate, {STORAGE})",
        )
    ]
