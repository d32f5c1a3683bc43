"""UI test fixtures: the real API (with its real Postgres) as the UI's upstream, and UI apps on top."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from functions.ui.app import create_app
from localstack.config import Ports, StackConfig
from localstack.parts import api, front_door, kube, postgres, reconciler, sample_mcp, ui
from localstack.supervisor import Supervisor
from tests.helpers.browser import ARGS, CHROMIUM, sign_in
from tests.helpers.ui import ADMIN, ui_settings


@pytest.fixture(scope="session")
def backend() -> Iterator[StackConfig]:
    """Postgres + the API function as real processes (the wiring `sentinel up` uses)."""
    # Not pytest's tmp_path: its 0700 root-owned parents are unreachable for the postgres user.
    data = Path(tempfile.mkdtemp(prefix="sentinel-ui-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    try:
        with Supervisor(cfg) as sup:
            sup.start_all([*postgres.components(cfg), *api.components(cfg)])
            yield cfg
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def governed_backend() -> Iterator[StackConfig]:
    """Postgres, the local Kubernetes API server (CRDs + demo objects), the API, the UI process, and
    the reconciler with the front door and the sample MCP server (servers published by URL go live).

    What managing servers, grants, sessions and teams needs, without the event pipeline. The API
    runs without Temporal: teams are provisioned in the identity store only (its default
    provisioner), and no request waits for an unreachable Temporal to time out.
    """
    data = Path(tempfile.mkdtemp(prefix="sentinel-ui-manage-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    no_temporal = [
        replace(c, env={k: v for k, v in c.env.items() if k != "TEMPORAL_ADDRESS"}) for c in api.components(cfg)
    ]
    try:
        with Supervisor(cfg) as sup:
            sup.start_all([*postgres.components(cfg), *kube.components(cfg), *sample_mcp.components(cfg),
                           *no_temporal, *reconciler.components(cfg), *ui.components(cfg),
                           *front_door.components(cfg)])
            yield cfg
    finally:
        shutil.rmtree(data, ignore_errors=True)



@pytest.fixture
def make_client(backend: StackConfig, tmp_path: Path) -> Iterator[Any]:
    """Factory: a TestClient (https base URL, so Secure cookies round-trip) over a fresh UI app."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        # A fresh session folder per client: each stands for a separate browser on a separate UI.
        session_dir = overrides.pop("session_dir", tmp_path / f"sessions-{len(clients)}")
        settings = ui_settings(backend, session_dir, **overrides)
        client = TestClient(create_app(settings), base_url="https://ui.test")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)

@pytest.fixture(scope="module")
def browser(governed_backend: StackConfig) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def admin_page(browser: Any, governed_backend: StackConfig) -> Iterator[Any]:
    """A signed-in admin page that may use the clipboard; fails the test on script or CSP errors."""

    context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and (
        "Content Security Policy" in m.text or "Refused" in m.text) else None)
    sign_in(page, governed_backend.url("ui", "/"), ADMIN)
    yield page
    context.close()
    assert not problems, problems
