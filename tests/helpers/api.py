"""Helpers of the api tests (constants and builders); their fixtures: tests/api/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx

from functions.api.settings import ApiSettings
from mcp_sentinel.identity.passwords import HashParams
from mcp_sentinel.identity.store import IdentityStore

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


@asynccontextmanager
async def serve(app: Any, peer: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, behind an in-process client (from `peer` when given)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, **({"client": (peer, 40000)} if peer else {}))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client


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
