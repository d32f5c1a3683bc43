"""OIDC against a real local issuer (discovery + JWKS over HTTP), and the api+postgres stack parts."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from localstack.config import Ports, StackConfig
from localstack.parts import api as api_part
from localstack.parts import postgres as pg_part
from localstack.supervisor import Supervisor
from tests.fixtures.oidc import Issuer
from tests.helpers.api import AppFactory


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    idp = Issuer()
    yield idp
    idp.close()


async def _exchange(api: Any, token: str, nonce: str) -> httpx.Response:
    r: httpx.Response = await api.client.post("/api/auth/oidc", json={"id_token": token, "nonce": nonce})
    return r


async def test_oidc_exchange(make_api: AppFactory, issuer: Issuer) -> None:
    api = await make_api(oidc_issuer=issuer.url, oidc_audience="sentinel", admin_users=frozenset({"boss@example.com"}))
    r = await _exchange(api, issuer.token(nonce="n-1", email_verified=True), "n-1")
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == "oidc@example.com" and r.json()["user"]["role"] == "user"
    token = r.json()["access_token"]
    me = await api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    # Same subject again (a new sign-in, a new nonce) → same user.
    again = await _exchange(api, issuer.token(nonce="n-2"), "n-2")
    assert again.json()["user"]["id"] == r.json()["user"]["id"]
    for bad in (issuer.token(aud="other", nonce="n-3"), issuer.token(iss="http://evil", nonce="n-3"),
                issuer.token(exp=int(time.time()) - 10, nonce="n-3")):
        r = await _exchange(api, bad, "n-3")
        assert r.status_code == 401 and r.json()["message"] == "invalid ID token"
    r = await api.client.post("/api/auth/oidc", json={"id_token": ""})
    assert r.status_code == 400 and r.json()["message"] == "id_token is required"
    # An unverified email in ADMIN_USERS neither makes an admin nor creates an account.
    r = await _exchange(api, issuer.token(sub="s2", email="boss@example.com", email_verified=False, nonce="n-4"), "n-4")
    assert r.status_code == 403 and await api.store.get_user_by_email("boss@example.com") is None
    # Nor does an email the provider says nothing about (no email_verified claim).
    r = await _exchange(api, issuer.token(sub="s2", email="boss@example.com", nonce="n-5"), "n-5")
    assert r.status_code == 403
    r = await _exchange(api, issuer.token(sub="s3", email="Boss@example.com", email_verified=True, nonce="n-6"), "n-6")
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin"


async def test_oidc_not_configured(make_api: AppFactory) -> None:
    api = await make_api()
    r = await api.client.post("/api/auth/oidc", json={"id_token": "x"})
    assert r.status_code == 404 and r.json() == {"error": "not_configured", "message": "OIDC is not configured"}


def test_api_and_postgres_stack_parts() -> None:
    data = Path(tempfile.mkdtemp(prefix="sentinel-api-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    os.environ.setdefault("SENTINEL_PG_FSYNC", "off")
    try:
        with Supervisor(cfg) as sup:
            sup.start_all(pg_part.components(cfg) + api_part.components(cfg))
            login = httpx.post(
                cfg.url("api", "/api/auth/login"), json={"email": "test@mcpruntime.org", "password": "test@123"}
            )
            assert login.status_code == 200 and login.json()["user"]["role"] == "user"
            admin = httpx.post(
                cfg.url("api", "/api/auth/login"), json={"email": "admin@mcpruntime.org", "password": "admin@123"}
            )
            assert admin.json()["user"]["role"] == "admin"
            # The local part trusts loopback proxies (UI, front door): their X-Forwarded-For names the client.
            # (An untrusted peer's header is ignored: tests/api/test_runtime_trusted_proxies.py.)
            httpx.post(cfg.url("api", "/api/auth/login"), json={"email": "test@mcpruntime.org", "password": "bad"},
                       headers={"X-Forwarded-For": "10.9.8.7"})
            rows = httpx.get(cfg.url("api", "/api/admin/audit"), headers={"x-api-key": cfg.admin_api_key}).json()
            assert {r["actor_ip"] for r in rows["audit_logs"]} == {"127.0.0.1", "10.9.8.7"}
            metrics = httpx.get(cfg.url("api_metrics", "/metrics")).text
            assert 'sentinel_api_requests_total{method="POST",route="/api/auth/login",status="200"}' in metrics
            assert httpx.get(cfg.url("api", "/metrics")).status_code == 404  # metrics only on the metrics port
            # Restart keeps data (persistent cluster) and seeding stays idempotent.
            sup.restart("api")
            again = httpx.post(
                cfg.url("api", "/api/auth/login"), json={"email": "test@mcpruntime.org", "password": "test@123"}
            )
            assert again.json()["user"]["id"] == login.json()["user"]["id"]
    finally:
        shutil.rmtree(data, ignore_errors=True)
