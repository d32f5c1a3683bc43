"""The API's login lockout through the UI: one client's failures lock that client, not everyone.

Every browser login reaches the API from the UI's address. The local `api` part trusts the UI on
loopback (`TRUSTED_PROXIES`), so the API keys its lockout on the browser address the UI forwards.
Real API process (with its real Postgres), real UI app; the browsers are told apart by address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from functions.ui.app import create_app
from functions.ui.settings import RateLimits
from localstack.config import StackConfig
from tests.helpers.ui import USER, ui_settings

ATTACKER, VICTIM = ("203.0.113.66", 41000), ("198.51.100.7", 42000)


@pytest.fixture
def browsers(backend: StackConfig, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """Two browsers at different addresses on the UI (generous UI limits: the API's lockout is under test).

    Two UI app instances (two replicas sharing the session folder): a TestClient runs its app on a
    loop of its own, so one app instance cannot serve both."""
    settings = ui_settings(backend, tmp_path / "sessions", limits=RateLimits(capacity=50, failure_threshold=50))
    with TestClient(create_app(settings), base_url="https://ui.test", client=ATTACKER) as a, \
            TestClient(create_app(settings), base_url="https://ui.test", client=VICTIM) as b:
        yield a, b


def test_failed_logins_through_the_ui_lock_only_that_client(browsers: tuple[TestClient, TestClient]) -> None:
    attacker, victim = browsers
    for _ in range(3):  # the 3rd failure locks (account, client) at the API for 15 s
        r = attacker.post("/auth/login", json={"email": USER[0], "password": "guess"})
        assert r.status_code == 401, r.text
    locked = attacker.post("/auth/login", json={"email": USER[0], "password": USER[1]})
    assert locked.status_code == 429, locked.text  # the right password does not help the locked client
    assert int(locked.headers["retry-after"]) >= 1
    ok = victim.post("/auth/login", json={"email": USER[0], "password": USER[1]})
    assert ok.status_code == 200, ok.text  # the same account from another client signs in
    assert ok.json()["principal"]["email"] == USER[0]


def test_a_forwarded_header_from_the_browser_does_not_pick_the_lock(
    browsers: tuple[TestClient, TestClient],
) -> None:
    """The UI only forwards what it saw: a browser claiming another address is still itself."""
    attacker, victim = browsers
    spoof = {"x-forwarded-for": VICTIM[0]}
    email = "nobody-xff@example.org"
    for _ in range(3):
        assert attacker.post("/auth/login", json={"email": email, "password": "x"}, headers=spoof).status_code == 401
    assert attacker.post("/auth/login", json={"email": email, "password": "x"}).status_code == 429
    # The victim's (email, address) bucket is untouched: its next failure is a 401, not a 429.
    assert victim.post("/auth/login", json={"email": email, "password": "x"}).status_code == 401
