"""`python -m functions.ingest`: serve the ingest function (PORT) and its metrics (METRICS_PORT)."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn
from prometheus_client import CollectorRegistry, start_http_server

from functions.ingest.app import SERVICE_NAME, create_app
from functions.ingest.settings import IngestSettings
from mcp_sentinel import telemetry
from mcp_sentinel.env import load_or_exit
from mcp_sentinel.secrets_check import enforce


def main() -> int:
    """Run until SIGTERM; exit 2 with a clear message on bad configuration."""
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format=fmt)
    enforce(os.environ, "ingest")
    settings = load_or_exit("ingest", lambda: IngestSettings.from_env(os.environ))
    if not settings.api_keys and not settings.oidc_jwks_url:
        logging.getLogger("ingest").warning(
            "no ingest credentials configured: %s",
            "accepting unauthenticated writes (INGEST_ALLOW_UNAUTHENTICATED=true)" if settings.allow_unauthenticated
            else "every write will be refused with 503 auth_not_configured",
        )
    registry = CollectorRegistry()
    start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
    provider = telemetry.setup_tracing(SERVICE_NAME, os.environ, install_global=True)
    app = create_app(settings, tracer_provider=provider, registry=registry,
                     event_spans=telemetry.exporting(os.environ))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
