"""Fixtures for the API tests: a real Postgres database, an app client, and principals of each kind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import psycopg
import pytest

from functions.api.agent_tokens import generate_pem
from functions.api.app import create_app
from mcp_sentinel.identity.store import IdentityStore
from tests.fixtures.kube import LocalKube
from tests.helpers.agent_tokens import ADMIN, ISSUER, PUBLIC, TOOLS, Env, bearer
from tests.helpers.api import (
    Api,
    AppFactory,
    base_settings,
    serve,
)
from tests.helpers.governance import ADMIN as GOV_ADMIN
from tests.helpers.governance import TOOLS as GOV_TOOLS
from tests.helpers.governance import Gov

TABLES = "audit_logs, api_keys, registry_credentials, team_memberships, namespaces, teams, auth_identities, users"


@pytest.fixture
async def clean_db(pg_dsn: str) -> str:
    """The module's database, migrated and emptied before the test."""
    store = await IdentityStore.open(pg_dsn)
    await store.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE".encode())
    return pg_dsn






@pytest.fixture
async def make_api(clean_db: str) -> AsyncIterator[AppFactory]:
    """Build an app (lifespan running) on the clean database; settings overridable per test."""
    async with AsyncExitStack() as stack:

        async def build(peer: str = "127.0.0.1", **overrides: Any) -> Api:
            backends = overrides.pop("_backends", {})
            app = create_app(base_settings(clean_db, **overrides), **backends)
            return Api(client=await stack.enter_async_context(serve(app, peer)), app=app)

        yield build


@pytest.fixture
async def api(make_api: AppFactory) -> Api:
    """The default app under test."""
    return await make_api()


@pytest.fixture
async def env(make_api: AppFactory, kube_cluster: LocalKube, tmp_path: Path) -> Env:
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    old.write_bytes(generate_pem())
    new.write_bytes(generate_pem())
    out = tmp_path / "policies"
    api = await make_api(
        policy_output_dir=str(out), _backends={"kube": kube_cluster.api},
        agent_token_keys=f"k-old={old},k-new={new}", agent_token_issuer=ISSUER, public_base_url=PUBLIC,
    )  # fmt: skip
    slug = f"t{uuid.uuid4().hex[:8]}"
    team = (await api.client.post("/api/runtime/teams", json={"slug": slug}, headers=ADMIN)).json()["team"]
    kube_cluster.kube.ensure_namespace(team["namespace"])
    member, other = [await api.signup(f"{n}-{slug}@example.com") for n in ("member", "other")]
    await api.store.add_member(team["id"], member["user"]["id"], "member")
    await api.store.add_member(team["id"], other["user"]["id"], "owner")
    for name in ("srv", "hdr"):
        body: dict[str, Any] = {"name": name, "namespace": team["namespace"], "image": "example/srv:1", "port": 8088,
                                "tools": TOOLS, "gateway": {"enabled": True, "port": 8091},
                                "session": {"required": True}}  # fmt: skip
        if name == "hdr":
            body["auth"] = {"mode": "header"}
        else:  # a publisher cannot point its server at another server's URL
            body["auth"] = {"resource": f"{PUBLIC}/victim/mcp"}
        r = await api.client.post("/api/runtime/servers", headers=ADMIN, json=body)
        assert r.status_code == 200, r.text
        grant = {"name": f"g-{name}", "namespace": team["namespace"], "serverRef": {"name": name},
                 "subject": {"humanID": member["user"]["id"]}, "maxTrust": "low", "allowedSideEffects": ["read"],
                 "toolRules": [{"name": "search", "decision": "allow"}]}  # fmt: skip
        r = await api.client.post("/api/runtime/grants", json=grant, headers=ADMIN)
        assert r.status_code == 200, r.text
    return Env(api, team["namespace"], bearer(member), member["user"]["id"], bearer(other), out)


@pytest.fixture
async def gov(make_api: AppFactory, kube_cluster: LocalKube, tmp_path: Path) -> Gov:
    api = await make_api(policy_output_dir=str(tmp_path), _backends={"kube": kube_cluster.api})
    slug = f"g{uuid.uuid4().hex[:8]}"
    team = (await api.client.post("/api/runtime/teams", json={"slug": slug}, headers=GOV_ADMIN)).json()["team"]
    kube_cluster.kube.ensure_namespace(team["namespace"])
    owner, member, other = [await api.signup(f"{n}-{slug}@example.com") for n in ("owner", "member", "other")]
    await api.store.add_member(team["id"], owner["user"]["id"], "owner")
    await api.store.add_member(team["id"], member["user"]["id"], "member")
    r = await api.client.post("/api/runtime/servers", headers=GOV_ADMIN, json={
        "name": "srv", "namespace": team["namespace"], "image": "example/srv:1", "port": 8088, "tools": GOV_TOOLS,
        "gateway": {"enabled": True, "port": 8091}, "session": {"required": True},
    })
    assert r.status_code == 200, r.text
    return Gov(api, kube_cluster, tmp_path, team["namespace"], team, bearer(owner), owner["user"]["id"],
               bearer(member), member["user"]["id"], bearer(other))
