"""`/auth/admin-check` re-asks the API on every check: a demoted or disabled admin loses admin tools at once.

Before, the UI answered from the role cached in its session (for up to the 8 h session lifetime).
Real API process, real Postgres; the demotion is what an operator does in the database (the API
has no role-change route), the disabling goes through the API's own admin route.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

import httpx
import psycopg
from starlette.testclient import TestClient

from localstack.config import StackConfig, free_port
from localstack.parts.postgres import postgres_dsn
from tests.helpers.ui import login

PASSWORD = "admin-password-1234"
MakeClient = Callable[..., TestClient]



def _new_admin(backend: StackConfig) -> tuple[str, str]:
    email = f"admin-{secrets.token_hex(4)}@example.com"
    r = httpx.post(backend.url("api", "/api/users"), headers={"x-api-key": backend.admin_api_key},
                   json={"email": email, "password": PASSWORD, "role": "admin"})
    assert r.status_code == 201, r.text
    return email, str(r.json()["user"]["id"])


def test_demoted_admin_is_refused_on_the_next_check(make_client: MakeClient, backend: StackConfig) -> None:
    email, _ = _new_admin(backend)
    c = make_client()
    assert login(c, (email, PASSWORD))["principal"]["role"] == "admin"
    assert c.get("/auth/admin-check").status_code == 204
    with psycopg.connect(postgres_dsn(backend), autocommit=True) as conn:
        conn.execute("UPDATE users SET role = 'user' WHERE email = %s", (email,))
    r = c.get("/auth/admin-check")
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"
    # The session itself still works for what a plain user may do.
    assert c.get("/api/auth/me").json()["principal"]["role"] == "user"


def test_disabled_admin_is_refused_on_the_next_check(make_client: MakeClient, backend: StackConfig) -> None:
    email, user_id = _new_admin(backend)
    c = make_client()
    login(c, (email, PASSWORD))
    assert c.get("/auth/admin-check").status_code == 204
    r = httpx.patch(backend.url("api", f"/api/users/{user_id}"), headers={"x-api-key": backend.admin_api_key},
                    json={"disabled": True})
    assert r.status_code == 200, r.text
    assert c.get("/auth/admin-check").status_code == 401


def test_admin_check_fails_closed_when_the_api_does_not_answer(make_client: MakeClient, backend: StackConfig) -> None:
    email, _ = _new_admin(backend)
    c = make_client()
    login(c, (email, PASSWORD))
    assert c.get("/auth/admin-check").status_code == 204
    # Point the same UI at a port nothing listens on: the cached admin role alone must not open the door.
    ctx = c.app.state.ctx  # type: ignore[attr-defined]
    ctx.settings = replace(ctx.settings, api_upstream=f"http://127.0.0.1:{free_port()}")
    r = c.get("/auth/admin-check")
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "admin_check_unavailable"
