"""The operations page's local component table is injected by the local stack, never imported by the API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from functions.api.app import create_app
from tests.helpers.api import ADMIN_KEY, base_settings

LOCAL = {"components_backend": "local", "sentinel_run_dir": "/nonexistent/run"}


def test_local_backend_without_the_injected_table_is_503_naming_the_entry_point() -> None:
    with TestClient(create_app(base_settings(**LOCAL))) as client:
        resp = client.get("/api/runtime/components", headers={"x-api-key": ADMIN_KEY})
    assert resp.status_code == 503
    assert "python -m localstack.api" in resp.json()["message"]


class Table:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def status(self, probe_seconds: float) -> list[dict[str, Any]]:
        if self.fail:
            raise ValueError("SENTINEL_STACK_PORTS is not JSON")
        return [{"name": "ingest", "state": "healthy", "probe_seconds": probe_seconds}]

    def running(self) -> list[str]:
        return ["ingest"]


def test_injected_table_answers_and_a_malformed_one_is_503() -> None:
    with TestClient(create_app(base_settings(**LOCAL), local_components=Table())) as client:
        resp = client.get("/api/runtime/components", headers={"x-api-key": ADMIN_KEY})
    assert resp.status_code == 200
    assert resp.json()["backend"] == "local" and resp.json()["components"][0]["name"] == "ingest"
    with TestClient(create_app(base_settings(**LOCAL), local_components=Table(fail=True))) as client:
        resp = client.get("/api/runtime/components", headers={"x-api-key": ADMIN_KEY})
    assert resp.status_code == 503 and "not JSON" in resp.json()["message"]
