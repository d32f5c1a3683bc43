"""The identity store against real Postgres: migrations, users, keys, teams, audit."""

from __future__ import annotations

import psycopg
import pytest

from mcp_sentinel.identity.migrations import MIGRATIONS
from mcp_sentinel.identity.passwords import HashParams, PasswordHasher
from mcp_sentinel.identity.store import Conflict, IdentityStore, NotFound, StoreUnavailable


async def test_migrations_are_idempotent(clean_db: str) -> None:
    store = await IdentityStore.open(clean_db)
    try:
        assert await store.migrate() == []  # already applied by clean_db
        assert await store.migrate() == []
    finally:
        await store.close()
    with psycopg.connect(clean_db) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]


async def test_fresh_database_gets_every_migration(pg_cluster) -> None:
    from localstack.parts.postgres import postgres_dsn

    admin = postgres_dsn(pg_cluster, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS t_fresh WITH (FORCE)")
        conn.execute("CREATE DATABASE t_fresh")
    store = await IdentityStore.open(postgres_dsn(pg_cluster, "t_fresh"))
    try:
        # A second store on the same database (another replica) finds nothing to do.
        other = await IdentityStore.open(postgres_dsn(pg_cluster, "t_fresh"))
        assert await other.migrate() == []
        await other.close()
    finally:
        await store.close()


async def test_default_password_hash_is_argon2id() -> None:
    hasher = PasswordHasher()
    stored = await hasher.hash("correct horse")
    assert stored.startswith("$argon2id$")
    assert "m=65536" in stored
    assert await hasher.verify(stored, "correct horse")
    assert not await hasher.verify(stored, "wrong horse")
    assert not await hasher.verify(None, "anything")
    assert not await hasher.verify("not-a-hash", "anything")


async def test_users_keys_and_teams(clean_db: str) -> None:
    store = await IdentityStore.open(clean_db)
    hasher = PasswordHasher(HashParams(time_cost=1, memory_cost_kib=1024, parallelism=1))
    try:
        alice = await store.create_user("Alice@Example.com ", "user", await hasher.hash("pw-alice-1"))
        assert alice.email == "alice@example.com"
        with pytest.raises(Conflict):
            await store.create_user("alice@example.com", "user", None)
        key, raw = await store.create_key("api_keys", alice.id, "laptop")
        assert raw.startswith("mcpu_") and key.prefix == raw[:8] and key.id.startswith("uk_")
        with psycopg.connect(clean_db) as conn:
            stored = conn.execute("SELECT key_hash FROM api_keys").fetchone()
        assert stored is not None and raw not in stored[0] and len(stored[0]) == 64
        found = await store.resolve_key("api_keys", raw)
        assert found is not None and found[0].id == alice.id
        assert (await store.list_keys("api_keys", alice.id))[0].last_used_at is not None
        await store.revoke_key("api_keys", alice.id, key.id)
        assert await store.resolve_key("api_keys", raw) is None
        # A registry credential is not an API key.
        _, reg_raw = await store.create_key("registry_credentials", alice.id, "ci")
        assert reg_raw.startswith("mcpr_")
        assert await store.resolve_key("api_keys", reg_raw) is None

        team = await store.create_team("blue", "Blue", alice.id)
        assert team.namespace == "mcp-team-blue"
        with pytest.raises(Conflict):
            await store.create_team("blue", "Again", None)
        with pytest.raises(ValueError):
            await store.create_team("Not_A_Slug", "x", None)
        principal = await store.load_principal(alice, auth_type="password")
        assert principal.namespace == "mcp-team-blue"
        assert principal.allowed_namespaces == ("mcp-servers", "mcp-team-blue")
        assert principal.team_role(team.id) == "owner"
        await store.delete_team(team.id)
        assert await store.get_team("blue") is None
        again = await store.create_team("blue", "Blue again", None)  # slug reusable after delete
        with pytest.raises(NotFound):
            await store.remove_member(again.id, alice.id)
    finally:
        await store.close()


async def test_bad_dsn_fails_clearly() -> None:
    with pytest.raises(StoreUnavailable, match=r"could not connect to Postgres at 127.0.0.1:1/nope"):
        await IdentityStore.open("postgresql://postgres@127.0.0.1:1/nope", wait_seconds=1.0)
