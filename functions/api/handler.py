"""Serverless entry point: `functions.api.handler.handler(event, context)` via Mangum."""

from __future__ import annotations

import os
from typing import Any

from mangum import Mangum

from functions.api.app import create_app
from functions.api.settings import ApiSettings
from mcp_sentinel.secrets_check import check_environment

_adapter: Any = None


def handler(event: dict[str, Any], context: Any) -> Any:
    """Build the app on first invocation (not at import) and delegate to Mangum."""
    global _adapter
    if _adapter is None:
        check_environment(os.environ, "api")  # no working defaults (mcp_sentinel/secrets_check.py)
        _adapter = Mangum(create_app(ApiSettings.from_env(os.environ)), lifespan="auto")
    return _adapter(event, context)
