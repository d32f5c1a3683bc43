"""Serverless entry points: Knative Functions style `new()` and an AWS-Lambda-style Mangum handler."""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette

from functions.ingest.app import SERVICE_NAME, create_app
from functions.ingest.settings import IngestSettings
from mcp_sentinel import telemetry
from mcp_sentinel.secrets_check import check_environment


def new() -> Starlette:
    """Knative-functions-style factory: the ingest ASGI app configured from the environment."""
    check_environment(os.environ, "ingest")  # no working defaults (mcp_sentinel/secrets_check.py)
    settings = IngestSettings.from_env(os.environ)
    return create_app(settings, tracer_provider=telemetry.setup_tracing(SERVICE_NAME, os.environ),
                      event_spans=telemetry.exporting(os.environ))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Mangum adapter (API Gateway / Lambda); the app is built per cold start, not at import."""
    from mangum import Mangum

    app = getattr(lambda_handler, "_app", None)
    if app is None:
        app = Mangum(new(), lifespan="off")
        lambda_handler._app = app  # type: ignore[attr-defined]  # cached per process (cold start)
    result: dict[str, Any] = app(event, context)
    return result
