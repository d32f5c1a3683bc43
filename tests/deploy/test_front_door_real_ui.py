"""The front door in front of the real UI process (the route users open, and Grafana's gate)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.supervisor import Supervisor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("fd-ui"), ports=Ports.free())
    with Supervisor(cfg) as sup:
        sup.start_all(local_stack(cfg, {"ui", "front_door"}))
        yield cfg


def test_ui_is_served_through_the_front_door(cfg: StackConfig) -> None:
    resp = httpx.get(cfg.url("front_door", "/health"), timeout=10)
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    js = httpx.get(cfg.url("front_door", "/config.js"), timeout=10)
    assert js.status_code == 200 and "MCP_API_BASE" in js.text


def test_admin_check_gate_works_through_the_front_door(cfg: StackConfig) -> None:
    ok = httpx.get(cfg.url("front_door", "/auth/admin-check"), headers={"x-api-key": cfg.admin_api_key}, timeout=10)
    assert ok.status_code == 204
    refused = httpx.get(cfg.url("front_door", "/auth/admin-check"), headers={"x-api-key": "nope"}, timeout=10)
    assert refused.status_code == 401


def test_api_route_reaches_the_ui_proxy(cfg: StackConfig) -> None:
    # The API is not started here: the UI's proxy answers (a gateway error), not the front door's 502
    # body, which proves /api/* went to the UI as designed.
    resp = httpx.get(cfg.url("front_door", "/api/events"), headers={"x-api-key": "mcpu_some-user-key"}, timeout=30)
    assert resp.status_code >= 500
    assert resp.headers.get("content-type", "").startswith("application/json")
    assert resp.json().get("upstream") != "ui"
