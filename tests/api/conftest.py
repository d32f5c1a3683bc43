"""Fixtures for the API tests: a real Postgres database, an app client, and principals of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import psycopg
import pytest

from functions.api.app import create_app
from functions.api.settings import ApiSettings
from mcp_sentinel.identity.passwords import HashParams
from mcp_sentinel.identity.store import IdentityStore
from tests.fixtures.postgres import *  # noqa: F403 - pg_cluster, pg_dsn fixtures

ADMIN_KEY = "test-admin-service-key"
USER_SERVICE_KEY = "test-user-service-key"
INGEST_KEY = "test-ingest-key"
JWT_SECRET = "test-jwt-secret-that-is-long-enough-0123456789"
# Cheap argon2id parameters keep the suite fast; production defaults are tested separately.
FAST_HASH = HashParams(time_cost=1, memory_cost_kib=1024, parallelism=1)


def base_settings(dsn: str = "", **overrides: Any) -> ApiSettings:
    """Settings every API test starts from."""
    s = ApiSettings(
        api_keys=frozenset({USER_SERVICE_KEY}),
        admin_api_keys=frozenset({ADMIN_KEY}),
        ingest_api_keys=frozenset({INGEST_KEY}),
        jwt_secret=JWT_SECRET,
        postgres_dsn=dsn,
        hash_params=FAST_HASH,
        db_startup_timeout=5.0,
        # Most tests make their users by self-service signup; tests of the default turn it off.
        signup_enabled=True,
    )
    return replace(s, **overrides)


TABLES = "audit_logs, api_keys, registry_credentials, team_memberships, namespaces, teams, auth_identities, users"


@pytest.fixture
async def clean_db(pg_dsn: str) -> str:
    """The module's database, migrated and emptied before the test."""
    store = await IdentityStore.open(pg_dsn)
    await store.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE".encode())
    return pg_dsn


@dataclass
class Api:
    """An app under test plus helpers to act as different callers."""

    client: httpx.AsyncClient
    app: Any

    @property
    def store(self) -> IdentityStore:
        store: IdentityStore = self.app.state.ctx.store
        return store

    async def signup(self, email: str, password: str = "password123") -> dict[str, Any]:
        """Sign up, then sign in (signup itself answers 202 and signs nobody in); the login body."""
        r = await self.client.post("/api/auth/signup", json={"email": email, "password": password})
        assert r.status_code == 202, r.text
        r = await self.client.post("/api/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def bearer(self, email: str, password: str = "password123") -> dict[str, str]:
        body = await self.signup(email, password)
        return {"Authorization": f"Bearer {body['access_token']}"}


AppFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(clean_db: str) -> AsyncIterator[AppFactory]:
    """Build an app (lifespan running) on the clean database; settings overridable per test."""
    stack: list[Any] = []

    async def build(peer: str = "127.0.0.1", **overrides: Any) -> Api:
        backends = overrides.pop("_backends", {})
        app = create_app(base_settings(clean_db, **overrides), **backends)
        cm = app.router.lifespan_context(app)
        await cm.__aenter__()
        stack.append(cm)
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://api.test")
        stack.append(client)
        return Api(client=client, app=app)

    yield build
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


@pytest.fixture
async def api(make_api: AppFactory) -> Api:
    """The default app under test."""
    return await make_api()
