"""The `dispatcher` part: the local KafkaSource forwarding `mcp.events` to the processor."""

from __future__ import annotations

from localstack.config import StackConfig
from localstack.parts.kafka import bootstrap
from localstack.supervisor import PYTHON, Component
from mcp_sentinel.kafka import DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC


def dispatcher_env(cfg: StackConfig, sink_url: str | None = None) -> dict[str, str]:
    """Environment of the local dispatcher (the fields of knative/ KafkaSource `spec`)."""
    return {
        "KAFKA_BROKERS": bootstrap(cfg),
        "KAFKA_TOPIC": DEFAULT_TOPIC,
        "KAFKA_GROUP": "mcp-sentinel-kafkasource",
        "SINK_URL": sink_url or cfg.url("processor", "/"),
        "SINK_AUTH_TOKEN": cfg.processor_delivery_token,
        "DEAD_LETTER_TOPIC": DEFAULT_DLQ_TOPIC,
        "DELIVERY_RETRY": "10",
        "DELIVERY_BACKOFF_POLICY": "exponential",
        "DELIVERY_BACKOFF_DELAY": "PT0.5S",
        # Locally one dispatcher process feeds one processor: a CloudEvents batch per partition and
        # poll keeps up where one POST per record cannot (production's KafkaSource is a parallel Go
        # dispatcher; the processor accepts both). DELIVERY_MODE=single is Knative's exact contract.
        "DELIVERY_MODE": "batch",
        "SOURCE_NAME": "mcp-events",
        "SOURCE_NAMESPACE": "mcp-sentinel",
        "METRICS_PORT": str(cfg.ports.dispatcher_metrics),
        "HOST": cfg.host,
        "OTEL_SERVICE_NAME": "mcp-sentinel-dispatcher",
    }


def components(cfg: StackConfig) -> list[Component]:
    """The dispatcher process (healthy once its metrics port answers)."""
    return [
        Component(
            name="dispatcher",
            argv=[PYTHON, "-m", "localstack.kafka_source"],
            env=dispatcher_env(cfg),
            health_url=cfg.url("dispatcher_metrics", "/metrics"),
            startup_timeout=60.0,
            description=f"(KafkaSource {DEFAULT_TOPIC} -> {cfg.url('processor', '/')})",
        )
    ]
