"""Serverless entry points: Knative Functions style `new()` and an AWS-Lambda-style Mangum handler."""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette

from functions.ui.app import create_app
from functions.ui.settings import UiSettings
from mcp_sentinel.secrets_check import check_environment


def new() -> Starlette:
    """Knative-functions-style factory: the UI ASGI app configured from the environment."""
    check_environment(os.environ, "ui")  # no working defaults (mcp_sentinel/secrets_check.py)
    return create_app(UiSettings.from_env(os.environ))


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Mangum adapter; the app is built per cold start, not at import."""
    from mangum import Mangum

    app = getattr(lambda_handler, "_app", None)
    if app is None:
        app = Mangum(new(), lifespan="auto")
        lambda_handler._app = app  # type: ignore[attr-defined]  # cached per process (cold start)
    result: dict[str, Any] = app(event, context)
    return result
