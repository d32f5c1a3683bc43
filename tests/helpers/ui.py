"""Helpers of the ui tests (constants and builders); their fixtures: tests/ui/conftest.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from functions.ui.settings import UiSettings
from localstack.config import StackConfig

USER = ("test@mcpruntime.org", "test@123")


ADMIN = ("admin@mcpruntime.org", "admin@123")


def ui_settings(cfg: StackConfig, session_dir: Path, **overrides: Any) -> UiSettings:
    """UI settings pointing at the backend's API."""
    base = UiSettings(
        api_upstream=cfg.url("api"),
        session_dir=session_dir,
        admin_api_keys=frozenset({cfg.admin_api_key}),
    )
    return replace(base, **overrides)


def login(client: TestClient, who: tuple[str, str] = USER) -> dict[str, Any]:
    """Sign in with email/password; returns the body (principal + csrf_token)."""
    resp = client.post("/auth/login", json={"email": who[0], "password": who[1]})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body
