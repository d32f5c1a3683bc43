"""`python -m functions.processor`: serve the processor on `PORT` with metrics on `METRICS_PORT`."""

from __future__ import annotations

import logging
import os

import uvicorn
from prometheus_client import start_http_server

from functions.processor.app import create_app
from functions.processor.settings import ProcessorSettings
from mcp_sentinel.env import load_or_exit
from mcp_sentinel.gc_tuning import tune_gc
from mcp_sentinel.secrets_check import enforce
from mcp_sentinel.telemetry import exporting, setup_tracing


def main() -> None:
    """Knative-style entry: all configuration from the environment."""
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format=fmt)
    enforce(os.environ, "processor")
    settings = load_or_exit("processor", ProcessorSettings.from_env)
    # Spans (kafka.consume, clickhouse.insert_event/insert_batch) only when an exporter is configured.
    provider = None
    if exporting(os.environ):
        provider = setup_tracing("mcp-sentinel-processor", os.environ, install_global=True)
    app = create_app(settings, tracer_provider=provider)
    tune_gc()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=os.environ.get("METRICS_ADDR", "0.0.0.0"),
                          registry=app.state.metrics.registry)  # fmt: skip
    uvicorn.run(app, host=os.environ.get("HOST", "0.0.0.0"), port=settings.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
