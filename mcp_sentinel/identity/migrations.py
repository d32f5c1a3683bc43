"""Versioned, idempotent schema migrations for the identity store.

Each migration runs once, in order, inside one transaction together with its
`schema_migrations` row; an advisory lock serialises concurrent starters (several API
replicas booting at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

# Arbitrary constant shared by every replica; identifies "identity schema migration" in pg_locks.
_LOCK_ID = 0x5E471E1


@dataclass(frozen=True)
class Migration:
    """One schema step; `version` values are increasing and never reused."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "identity core",
        """
        CREATE TABLE users (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            email text NOT NULL UNIQUE,
            role text NOT NULL CHECK (role IN ('user', 'admin')),
            created_at timestamptz NOT NULL DEFAULT now(),
            disabled_at timestamptz,
            deleted_at timestamptz
        );
        CREATE TABLE auth_identities (
            user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            provider text NOT NULL,
            subject text NOT NULL,
            password_hash text,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (provider, subject)
        );
        CREATE INDEX auth_identities_user ON auth_identities(user_id);
        CREATE TABLE teams (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            slug text NOT NULL,
            display_name text NOT NULL,
            created_by uuid REFERENCES users(id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            deleted_at timestamptz
        );
        CREATE UNIQUE INDEX teams_slug_live ON teams(slug) WHERE deleted_at IS NULL;
        CREATE TABLE team_memberships (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            team_id uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
            user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            role text NOT NULL CHECK (role IN ('owner', 'member')),
            created_at timestamptz NOT NULL DEFAULT now(),
            deleted_at timestamptz
        );
        CREATE UNIQUE INDEX team_memberships_live ON team_memberships(team_id, user_id) WHERE deleted_at IS NULL;
        CREATE INDEX team_memberships_user ON team_memberships(user_id);
        CREATE TABLE namespaces (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid REFERENCES users(id) ON DELETE CASCADE,
            team_id uuid REFERENCES teams(id) ON DELETE CASCADE,
            namespace text NOT NULL,
            display_name text,
            scope text NOT NULL DEFAULT 'user' CHECK (scope IN ('user', 'team')),
            created_at timestamptz NOT NULL DEFAULT now(),
            deleted_at timestamptz
        );
        CREATE UNIQUE INDEX namespaces_live ON namespaces(namespace) WHERE deleted_at IS NULL;
        CREATE INDEX namespaces_user ON namespaces(user_id);
        CREATE INDEX namespaces_team ON namespaces(team_id);
        -- One table for every user API key (upstream kept a second store in a Kubernetes Secret).
        CREATE TABLE api_keys (
            id text PRIMARY KEY,
            key_hash text NOT NULL UNIQUE,
            user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name text NOT NULL,
            prefix text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz,
            revoked boolean NOT NULL DEFAULT false,
            revoked_at timestamptz
        );
        CREATE INDEX api_keys_user ON api_keys(user_id);
        CREATE TABLE registry_credentials (
            id text PRIMARY KEY,
            key_hash text NOT NULL UNIQUE,
            user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name text NOT NULL,
            prefix text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz,
            revoked boolean NOT NULL DEFAULT false,
            revoked_at timestamptz
        );
        CREATE INDEX registry_credentials_user ON registry_credentials(user_id);
        CREATE TABLE audit_logs (
            id bigserial PRIMARY KEY,
            user_id uuid REFERENCES users(id) ON DELETE SET NULL,
            email text,
            action text NOT NULL,
            resource text NOT NULL,
            namespace text,
            status text NOT NULL CHECK (status IN ('success', 'denied', 'error')),
            message text,
            actor_ip text,
            request_id text,
            source text,
            auth_identity text,
            image_ref text,
            server_name text,
            deployment_target text,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX audit_logs_user ON audit_logs(user_id);
        CREATE INDEX audit_logs_created ON audit_logs(created_at DESC);
        CREATE INDEX audit_logs_action ON audit_logs(action);
        CREATE INDEX audit_logs_image ON audit_logs(image_ref);
        """,
    ),
)


async def apply_migrations(conn: psycopg.AsyncConnection[Any]) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call (empty when up to date)."""
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {int(row["version"] if isinstance(row, dict) else row[0]) for row in await cur.fetchall()}
        for mig in MIGRATIONS:
            if mig.version in done:
                continue
            # Migration text is our own constant, never user input.
            await conn.execute(mig.sql.encode())
            await conn.execute("INSERT INTO schema_migrations(version, name) VALUES (%s, %s)", (mig.version, mig.name))
            applied_now.append(mig.version)
    return applied_now
