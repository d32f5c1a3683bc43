"""`python -m functions.api`: serve the API on PORT and Prometheus metrics on METRICS_PORT."""

from __future__ import annotations

import logging
import os
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, start_http_server

from functions.api.app import create_app
from functions.api.settings import ApiSettings
from mcp_sentinel.env import load_or_exit
from mcp_sentinel.secrets_check import enforce


def main(**backends: Any) -> None:
    """Run until SIGTERM (Knative-style single process); `backends` are injected into the app (local stack)."""
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format=fmt)
    enforce(os.environ, "api")
    # ValueError too: key files and key rings are checked while loading (their errors name the variable).
    settings = load_or_exit("api", lambda: ApiSettings.from_env(os.environ), ValueError)
    registry = CollectorRegistry()
    start_http_server(settings.metrics_port, addr=settings.host, registry=registry)
    app = create_app(settings, registry=registry, **backends)
    # proxy_headers=False: the lockout and audit peer address must be the real transport peer,
    # never a client-supplied X-Forwarded-For (uvicorn would otherwise trust it from loopback).
    uvicorn.run(app, host=settings.host, port=settings.port, proxy_headers=False, log_level="warning")


if __name__ == "__main__":
    main()
