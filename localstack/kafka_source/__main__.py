"""`python -m localstack.kafka_source`: run the local KafkaSource until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from prometheus_client import CollectorRegistry, start_http_server

from localstack.kafka_source.dispatcher import Dispatcher
from localstack.kafka_source.settings import DispatcherSettings
from mcp_sentinel import telemetry
from mcp_sentinel.env import load_or_exit
from mcp_sentinel.gc_tuning import tune_gc


def main() -> int:
    """Run the dispatcher; exit 2 with a clear message on bad configuration."""
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format=fmt)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_or_exit("dispatcher", lambda: DispatcherSettings.from_env(os.environ))
    registry = CollectorRegistry()
    # /metrics and a liveness answer on the metrics port (prometheus_client serves any path).
    start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
    provider = telemetry.setup_tracing("mcp-sentinel-dispatcher", os.environ, install_global=True)
    dispatcher = Dispatcher(settings, registry=registry, tracer_provider=provider,
                            record_spans=telemetry.exporting(os.environ))

    tune_gc()  # each poll allocates thousands of short-lived record objects

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        dispatcher.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    dispatcher.run()
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
