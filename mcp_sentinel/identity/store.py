"""The identity store: every identity table behind one async API (psycopg 3 + connection pool).

Handlers await these methods, so FastAPI's event loop never blocks on Postgres. Writes that
must be atomic (team + namespace + owner membership) share one transaction. The queries live in
one module per noun (`users`, `teams`, `key_store`, `platform_audit`); this class composes them
and owns the pool's life cycle.

psycopg and its pool (about 50 ms of imports) are loaded by `open()`, not with this module: the
API names these types in its routes, and runs without Postgres when POSTGRES_DSN is unset.
"""

from __future__ import annotations

from mcp_sentinel.identity.key_store import KeyQueries
from mcp_sentinel.identity.migrations import apply_migrations
from mcp_sentinel.identity.platform_audit import AuditQueries
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal, TeamRef
from mcp_sentinel.identity.records import (
    AuditEntry,
    Conflict,
    KeySummary,
    KeyTable,
    LinkRequired,
    Membership,
    NotFound,
    StoreError,
    StoreUnavailable,
    Team,
    User,
)
from mcp_sentinel.identity.teams import TeamQueries

__all__ = [
    "AuditEntry", "Conflict", "IdentityStore", "KeySummary", "KeyTable", "LinkRequired", "Membership", "NotFound",
    "StoreError", "StoreUnavailable", "Team", "User",
]


class IdentityStore(TeamQueries, KeyQueries, AuditQueries):
    """Async access to the identity schema. Create with `open()`, release with `close()`."""

    @classmethod
    async def open(
        cls, dsn: str, *, min_size: int = 1, max_size: int = 10, wait_seconds: float = 30.0
    ) -> IdentityStore:
        """Connect (waiting up to `wait_seconds` for Postgres) and apply pending migrations."""
        # Deferred imports: see module docstring.
        from psycopg.conninfo import conninfo_to_dict
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        pool = AsyncConnectionPool(
            dsn, min_size=min_size, max_size=max_size, open=False, kwargs={"autocommit": True, "row_factory": dict_row}
        )
        try:
            await pool.open(wait=True, timeout=wait_seconds)
        except PoolTimeout:
            await pool.close()
            info = conninfo_to_dict(dsn)  # named without the password
            where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
            raise StoreUnavailable(f"could not connect to Postgres at {where} within {wait_seconds:g} s") from None
        store = cls(pool)
        try:
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._pool.close()

    async def migrate(self) -> list[int]:
        """Apply pending migrations (idempotent); returns versions applied now."""
        async with self._pool.connection() as conn:
            return await apply_migrations(conn)

    async def ping(self) -> bool:
        """True when a pooled connection answers."""
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
            return True
        except Exception:  # psycopg.Error, pool timeouts, OSError: all mean "not answering"
            return False

    async def load_principal(self, user: User, *, auth_type: str, api_key_id: str | None = None) -> Principal:
        """The §7.2 principal of a user: teams by slug, first team namespace, allowed namespaces."""
        teams = [
            TeamRef(id=m.team_id, slug=m.team_slug, name=m.team_name, namespace=m.team_namespace, role=m.role)
            for m in await self.memberships_of(user.id)
        ]
        team_ns = [t.namespace for t in teams if t.namespace]
        allowed = sorted({*team_ns, SHARED_NAMESPACE})
        return Principal(
            role=user.role,
            auth_type=auth_type,
            subject=user.id,
            email=user.email,
            namespace=team_ns[0] if team_ns else None,
            allowed_namespaces=tuple(allowed),
            teams=tuple(teams),
            api_key_id=api_key_id,
        )
