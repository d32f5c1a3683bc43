"""The identity store: every identity table behind one async API (psycopg 3 + connection pool).

Handlers await these methods, so FastAPI's event loop never blocks on Postgres. Writes that
must be atomic (team + namespace + owner membership) share one transaction.

psycopg and its pool (about 50 ms of imports) are loaded by `open()`, not with this module: the
API names these types in its routes, and runs without Postgres when POSTGRES_DSN is unset.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mcp_sentinel.identity import keys as keymod
from mcp_sentinel.identity.migrations import apply_migrations
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal, TeamRef, team_namespace
from mcp_sentinel.lazy_errors import error_type

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

KeyTable = Literal["api_keys", "registry_credentials"]
_KEY_KINDS: dict[str, tuple[str, str]] = {
    # table -> (raw key prefix, id prefix)
    "api_keys": (keymod.USER_KEY_PREFIX, "uk_"),
    "registry_credentials": (keymod.REGISTRY_KEY_PREFIX, "rk_"),
}
SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
RESERVED_NAMESPACES = frozenset(
    {
        SHARED_NAMESPACE,
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "mcp-runtime",
        "mcp-sentinel",
        "registry",
        "traefik",
    }
)
# A key's last_used_at is refreshed at most this often (keeps hot keys from writing per request).
LAST_USED_GRANULARITY = "5 minutes"


class StoreError(Exception):
    """Base class for identity-store failures callers are expected to handle."""


class StoreUnavailable(StoreError):
    """Postgres could not be reached."""


class Conflict(StoreError):
    """A unique value (email, team slug, membership) already exists."""


class NotFound(StoreError):
    """The referenced row does not exist (or is deleted)."""


class LinkRequired(StoreError):
    """An OIDC identity matches an existing account by email only; its owner must link it."""


@dataclass(frozen=True)
class User:
    """A platform user."""

    id: str
    email: str
    role: str
    created_at: datetime
    disabled: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON form used by the API."""
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "disabled": self.disabled,
        }


@dataclass(frozen=True)
class Team:
    """A team and its Kubernetes namespace."""

    id: str
    slug: str
    name: str
    namespace: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON form (`{id, slug, name, namespace, created_at}`)."""
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "namespace": self.namespace,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Membership:
    """A user's role in a team."""

    team_id: str
    team_slug: str
    team_name: str
    team_namespace: str
    user_id: str
    email: str | None
    role: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON form used by the members routes."""
        return {
            "team_id": self.team_id,
            "team_slug": self.team_slug,
            "team_name": self.team_name,
            "team_namespace": self.team_namespace,
            "user_id": self.user_id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class KeySummary:
    """A user API key or registry credential, without its secret."""

    id: str
    user_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """JSON form (`revoked_at`/`last_used_at` omitted when unset)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "revoked": self.revoked,
        }
        if self.revoked_at is not None:
            out["revoked_at"] = self.revoked_at.isoformat()
        if self.last_used_at is not None:
            out["last_used_at"] = self.last_used_at.isoformat()
        return out


@dataclass(frozen=True)
class AuditEntry:
    """One platform audit row to write."""

    action: str
    resource: str
    status: str
    user_id: str | None = None
    email: str | None = None
    namespace: str | None = None
    message: str | None = None
    actor_ip: str | None = None
    request_id: str | None = None
    source: str | None = None
    auth_identity: str | None = None
    image_ref: str | None = None
    server_name: str | None = None
    deployment_target: str | None = None


_AUDIT_COLUMNS = (
    "user_id",
    "email",
    "action",
    "resource",
    "namespace",
    "status",
    "message",
    "actor_ip",
    "request_id",
    "source",
    "auth_identity",
    "image_ref",
    "server_name",
    "deployment_target",
)


def _user(row: dict[str, Any]) -> User:
    return User(
        id=str(row["id"]),
        email=row["email"],
        role=row["role"],
        created_at=row["created_at"],
        disabled=row["disabled_at"] is not None,
    )


def _team(row: dict[str, Any]) -> Team:
    return Team(
        id=str(row["id"]),
        slug=row["slug"],
        name=row["display_name"],
        namespace=row["namespace"] or team_namespace(row["slug"]),
        created_at=row["created_at"],
    )


def _key(row: dict[str, Any]) -> KeySummary:
    return KeySummary(
        id=row["id"],
        user_id=str(row["user_id"]),
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked=row["revoked"],
        revoked_at=row["revoked_at"],
    )


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


_TEAM_SELECT = """
    SELECT t.id, t.slug, t.display_name, t.created_at, n.namespace
    FROM teams t
    LEFT JOIN namespaces n ON n.team_id = t.id AND n.deleted_at IS NULL
    WHERE t.deleted_at IS NULL
"""
_MEMBER_SELECT = """
    SELECT m.team_id, t.slug, t.display_name, n.namespace, m.user_id, u.email, m.role, m.created_at
    FROM team_memberships m
    JOIN teams t ON t.id = m.team_id AND t.deleted_at IS NULL
    JOIN users u ON u.id = m.user_id
    LEFT JOIN namespaces n ON n.team_id = t.id AND n.deleted_at IS NULL
    WHERE m.deleted_at IS NULL
"""


def _membership(row: dict[str, Any]) -> Membership:
    return Membership(
        team_id=str(row["team_id"]),
        team_slug=row["slug"],
        team_name=row["display_name"],
        team_namespace=row["namespace"] or team_namespace(row["slug"]),
        user_id=str(row["user_id"]),
        email=row["email"],
        role=row["role"],
        created_at=row["created_at"],
    )


class IdentityStore:
    """Async access to the identity schema. Create with `open()`, release with `close()`."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

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

    async def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql.encode(), params)
            return list(await cur.fetchall())  # type: ignore[arg-type]

    async def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    # ---- users -----------------------------------------------------------------------------

    async def create_user(self, email: str, role: str, password_hash: str | None) -> User:
        """A new user with a password identity (when a hash is given); Conflict if the email exists."""
        email = email.strip().lower()
        async with self._pool.connection() as conn, conn.transaction():
            try:
                cur = await conn.execute(
                    "INSERT INTO users(email, role) VALUES (%s, %s) RETURNING *", (email, role)
                )
            except error_type("psycopg.errors", "UniqueViolation") as exc:
                raise Conflict(f"user {email} already exists") from exc
            row = await cur.fetchone()
            assert row is not None
            if password_hash is not None:
                await conn.execute(
                    "INSERT INTO auth_identities(user_id, provider, subject, password_hash)"
                    " VALUES (%s, 'password', %s, %s)",
                    (row["id"], email, password_hash),  # type: ignore[call-overload]
                )
        return _user(row)  # type: ignore[arg-type]

    async def ensure_password_user(self, email: str, role: str, password_hash: str) -> User:
        """Create the user if absent (seeding); an existing user keeps its password and role."""
        existing = await self.get_user_by_email(email)
        if existing is not None:
            return existing
        try:
            return await self.create_user(email, role, password_hash)
        except Conflict:
            user = await self.get_user_by_email(email)
            if user is None:
                raise
            return user

    async def get_user(self, user_id: str) -> User | None:
        """A non-deleted user by id (disabled users are returned; callers check `disabled`)."""
        uid = _uuid_or_none(user_id)
        if uid is None:
            return None
        row = await self._one("SELECT * FROM users WHERE id = %s AND deleted_at IS NULL", (uid,))
        return _user(row) if row else None

    async def get_user_by_email(self, email: str) -> User | None:
        """A non-deleted user by (case-insensitive) email."""
        row = await self._one(
            "SELECT * FROM users WHERE email = %s AND deleted_at IS NULL", (email.strip().lower(),)
        )
        return _user(row) if row else None

    async def password_login_record(self, email: str) -> tuple[User, str | None] | None:
        """The user and stored password hash for a login attempt (None when no such user)."""
        row = await self._one(
            """SELECT u.*, a.password_hash FROM users u
               LEFT JOIN auth_identities a ON a.user_id = u.id AND a.provider = 'password'
               WHERE u.email = %s AND u.deleted_at IS NULL""",
            (email.strip().lower(),),
        )
        if row is None:
            return None
        return _user(row), row["password_hash"]

    async def oidc_sign_in(
        self, issuer: str, subject: str, email: str, *, email_verified: bool, make_admin: bool, may_create: bool
    ) -> User:
        """The user an OIDC identity signs in as; never silently takes over someone else's account.

        * an identity already linked signs in as its user (admin can be granted, never revoked here);
        * an account with this email that has *no* sign-in method yet (an admin's invitation) is
          claimed by the first identity whose provider says the email is verified;
        * any other existing account with this email raises `LinkRequired`: its owner must sign in
          to it and link the identity (`link_oidc_identity`);
        * otherwise a new user is created when `may_create` and the email is verified, else
          `NotFound` (no account for this identity).
        """
        provider = f"oidc:{issuer}"
        email = email.strip().lower()
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """SELECT u.* FROM auth_identities a JOIN users u ON u.id = a.user_id
                   WHERE a.provider = %s AND a.subject = %s AND u.deleted_at IS NULL""",
                (provider, subject),
            )
            row = await cur.fetchone()
            if row is None:
                if not email or not email_verified:
                    # An unverified address proves nothing: it can neither claim nor create an account.
                    raise NotFound("the identity provider has not verified this email")
                cur = await conn.execute(
                    """SELECT u.*, (SELECT count(*) FROM auth_identities a WHERE a.user_id = u.id) AS methods
                       FROM users u WHERE u.email = %s AND u.deleted_at IS NULL FOR UPDATE""",
                    (email,),
                )
                row = await cur.fetchone()
                if row is not None and row["methods"]:  # type: ignore[call-overload]
                    raise LinkRequired("an account with this email exists: sign in to it and link this identity")
                if row is None:
                    if not may_create:
                        raise NotFound("no account for this identity")
                    try:
                        cur = await conn.execute(
                            "INSERT INTO users(email, role) VALUES (%s, %s) RETURNING *",
                            (email, "admin" if make_admin else "user"),
                        )
                    except error_type("psycopg.errors", "UniqueViolation") as exc:
                        raise Conflict(f"user {email} already exists") from exc
                    row = await cur.fetchone()
                assert row is not None
                await conn.execute(
                    "INSERT INTO auth_identities(user_id, provider, subject) VALUES (%s, %s, %s)",
                    (row["id"], provider, subject),  # type: ignore[call-overload]
                )
            if make_admin and row["role"] != "admin":  # type: ignore[call-overload]
                cur = await conn.execute(
                    "UPDATE users SET role = 'admin' WHERE id = %s RETURNING *",
                    (row["id"],),  # type: ignore[call-overload]
                )
                row = await cur.fetchone()
                assert row is not None
        return _user(row)  # type: ignore[arg-type]

    async def link_oidc_identity(self, user_id: str, issuer: str, subject: str) -> None:
        """Link an OIDC identity to a signed-in user; Conflict when it belongs to another user."""
        provider = f"oidc:{issuer}"
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO auth_identities(user_id, provider, subject) VALUES (%s, %s, %s)"
                " ON CONFLICT (provider, subject) DO NOTHING RETURNING user_id",
                (uuid.UUID(user_id), provider, subject),
            )
            if await cur.fetchone() is not None:
                return
            cur = await conn.execute(
                "SELECT user_id FROM auth_identities WHERE provider = %s AND subject = %s", (provider, subject)
            )
            owner = await cur.fetchone()
            if owner is None or str(owner["user_id"]) != user_id:  # type: ignore[call-overload]
                raise Conflict("this identity is linked to another account")

    async def list_users(self, email: str | None = None) -> list[User]:
        """Non-deleted users (optionally one email), oldest first."""
        if email:
            rows = await self._all(
                "SELECT * FROM users WHERE deleted_at IS NULL AND email = %s", (email.strip().lower(),)
            )
        else:
            rows = await self._all("SELECT * FROM users WHERE deleted_at IS NULL ORDER BY created_at, email")
        return [_user(r) for r in rows]

    async def set_user_disabled(self, user_id: str, disabled: bool) -> User:
        """Disable or re-enable a user; takes effect on their very next request."""
        row = await self._one(
            "UPDATE users SET disabled_at = CASE WHEN %s THEN coalesce(disabled_at, now()) END"
            " WHERE id = %s AND deleted_at IS NULL RETURNING *",
            (disabled, _uuid_or_none(user_id)),
        )
        if row is None:
            raise NotFound("user not found")
        return _user(row)

    async def delete_user(self, user_id: str) -> None:
        """Soft-delete a user (keys and tokens stop working at once)."""
        row = await self._one(
            "UPDATE users SET deleted_at = now() WHERE id = %s AND deleted_at IS NULL RETURNING id",
            (_uuid_or_none(user_id),),
        )
        if row is None:
            raise NotFound("user not found")

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

    # ---- API keys and registry credentials ---------------------------------------------------

    async def create_key(self, table: KeyTable, user_id: str, name: str) -> tuple[KeySummary, str]:
        """Mint a key for a user; returns the summary and the raw secret (shown once)."""
        raw_prefix, id_prefix = _KEY_KINDS[table]
        new = keymod.mint(raw_prefix)
        row = await self._one(
            f"INSERT INTO {table}(id, key_hash, user_id, name, prefix) VALUES (%s,%s,%s,%s,%s) RETURNING *",
            (id_prefix + str(uuid.uuid4()), new.key_hash, uuid.UUID(user_id), name, new.prefix),
        )
        assert row is not None
        return _key(row), new.raw

    async def list_keys(self, table: KeyTable, user_id: str) -> list[KeySummary]:
        """A user's keys, newest first."""
        rows = await self._all(
            f"SELECT * FROM {table} WHERE user_id = %s ORDER BY created_at DESC, id", (uuid.UUID(user_id),)
        )
        return [_key(r) for r in rows]

    async def revoke_key(self, table: KeyTable, user_id: str, key_id: str) -> KeySummary:
        """Revoke one of the user's keys (idempotent); NotFound for unknown or foreign ids."""
        row = await self._one(
            f"UPDATE {table} SET revoked = true, revoked_at = coalesce(revoked_at, now())"
            " WHERE id = %s AND user_id = %s RETURNING *",
            (key_id, uuid.UUID(user_id)),
        )
        if row is None:
            raise NotFound("key not found")
        return _key(row)

    async def resolve_key(self, table: KeyTable, raw: str) -> tuple[User, str] | None:
        """The live owner and key id of a non-revoked key, or None; refreshes `last_used_at` lazily."""
        row = await self._one(
            f"""SELECT u.*, k.id AS key_id FROM {table} k JOIN users u ON u.id = k.user_id
                WHERE k.key_hash = %s AND NOT k.revoked AND u.deleted_at IS NULL""",
            (keymod.hash_secret(raw),),
        )
        if row is None:
            return None
        await self._all(
            f"UPDATE {table} SET last_used_at = now() WHERE id = %s"
            f" AND (last_used_at IS NULL OR last_used_at < now() - interval '{LAST_USED_GRANULARITY}')"
            " RETURNING id",
            (row["key_id"],),
        )
        return _user(row), row["key_id"]

    # ---- teams, memberships, namespaces ------------------------------------------------------

    async def create_team(self, slug: str, name: str, created_by: str | None) -> Team:
        """A team, its `mcp-team-<slug>` namespace row and (if given) the creator as owner, atomically."""
        if not SLUG_RE.match(slug):
            raise ValueError("slug must be a lower-case DNS label (a-z, 0-9, '-'; at most 42 characters)")
        ns = team_namespace(slug)
        creator = _uuid_or_none(created_by) if created_by else None
        async with self._pool.connection() as conn, conn.transaction():
            try:
                cur = await conn.execute(
                    "INSERT INTO teams(slug, display_name, created_by) VALUES (%s, %s, %s) RETURNING *",
                    (slug, name, creator),
                )
                team = await cur.fetchone()
                assert team is not None
                await conn.execute(
                    "INSERT INTO namespaces(team_id, namespace, display_name, scope) VALUES (%s, %s, %s, 'team')",
                    (team["id"], ns, name),  # type: ignore[call-overload]
                )
            except error_type("psycopg.errors", "UniqueViolation") as exc:
                raise Conflict(f"team {slug} already exists") from exc
            if creator is not None:
                await conn.execute(
                    "INSERT INTO team_memberships(team_id, user_id, role) VALUES (%s, %s, 'owner')",
                    (team["id"], creator),  # type: ignore[call-overload]
                )
        return Team(id=str(team["id"]), slug=slug, name=name, namespace=ns, created_at=team["created_at"])  # type: ignore[call-overload]

    async def delete_team(self, team_id: str) -> None:
        """Soft-delete a team with its namespace row and memberships (the slug becomes reusable)."""
        tid = _uuid_or_none(team_id)
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE teams SET deleted_at = now() WHERE id = %s AND deleted_at IS NULL RETURNING id", (tid,)
            )
            if await cur.fetchone() is None:
                raise NotFound("team not found")
            await conn.execute(
                "UPDATE namespaces SET deleted_at = now() WHERE team_id = %s AND deleted_at IS NULL", (tid,)
            )
            await conn.execute(
                "UPDATE team_memberships SET deleted_at = now() WHERE team_id = %s AND deleted_at IS NULL", (tid,)
            )

    async def get_team(self, ref: str) -> Team | None:
        """A live team by id or slug."""
        uid = _uuid_or_none(ref)
        if uid is not None:
            row = await self._one(_TEAM_SELECT + " AND t.id = %s", (uid,))
        else:
            row = await self._one(_TEAM_SELECT + " AND t.slug = %s", (ref,))
        return _team(row) if row else None

    async def list_teams(self, member_id: str | None = None) -> list[Team]:
        """All live teams, or those `member_id` belongs to; by slug."""
        if member_id is None:
            rows = await self._all(_TEAM_SELECT + " ORDER BY t.slug")
        else:
            rows = await self._all(
                _TEAM_SELECT + " AND t.id IN (SELECT team_id FROM team_memberships"
                " WHERE user_id = %s AND deleted_at IS NULL) ORDER BY t.slug",
                (uuid.UUID(member_id),),
            )
        return [_team(r) for r in rows]

    async def add_member(self, team_id: str, user_id: str, role: str) -> Membership:
        """Add a user to a team or change their role (upsert)."""
        if role not in ("owner", "member"):
            raise ValueError("role must be owner or member")
        tid, uid = _uuid_or_none(team_id), _uuid_or_none(user_id)
        if uid is None or await self.get_user(user_id) is None:
            raise NotFound("user not found")
        if tid is None or await self.get_team(team_id) is None:
            raise NotFound("team not found")
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE team_memberships SET role = %s WHERE team_id = %s AND user_id = %s AND deleted_at IS NULL"
                " RETURNING id",
                (role, tid, uid),
            )
            if await cur.fetchone() is None:
                await conn.execute(
                    "INSERT INTO team_memberships(team_id, user_id, role) VALUES (%s, %s, %s)", (tid, uid, role)
                )
        found = await self._one(_MEMBER_SELECT + " AND m.team_id = %s AND m.user_id = %s", (tid, uid))
        assert found is not None
        return _membership(found)

    async def remove_member(self, team_id: str, user_id: str) -> None:
        """End a membership; NotFound when there is none."""
        row = await self._one(
            "UPDATE team_memberships SET deleted_at = now() WHERE team_id = %s AND user_id = %s"
            " AND deleted_at IS NULL RETURNING id",
            (_uuid_or_none(team_id), _uuid_or_none(user_id)),
        )
        if row is None:
            raise NotFound("membership not found")

    async def list_members(self, team_id: str) -> list[Membership]:
        """Members of a team, owners first then by email."""
        rows = await self._all(
            _MEMBER_SELECT + " AND m.team_id = %s ORDER BY m.role DESC, u.email", (_uuid_or_none(team_id),)
        )
        return [_membership(r) for r in rows]

    async def memberships_of(self, user_id: str) -> list[Membership]:
        """A user's memberships, by team slug."""
        rows = await self._all(_MEMBER_SELECT + " AND m.user_id = %s ORDER BY t.slug", (_uuid_or_none(user_id),))
        return [_membership(r) for r in rows]

    async def list_namespaces(self) -> list[dict[str, Any]]:
        """Every live namespace row with its owner/team (admin view)."""
        rows = await self._all(
            """SELECT n.id, n.user_id, u.email, n.team_id, t.slug AS team_slug, t.display_name AS team_name,
                      n.scope, n.namespace, n.created_at
               FROM namespaces n
               LEFT JOIN users u ON u.id = n.user_id
               LEFT JOIN teams t ON t.id = n.team_id
               WHERE n.deleted_at IS NULL ORDER BY n.namespace"""
        )
        return [
            {
                "id": str(r["id"]),
                "user_id": str(r["user_id"]) if r["user_id"] else None,
                "email": r["email"],
                "team_id": str(r["team_id"]) if r["team_id"] else None,
                "team_slug": r["team_slug"],
                "team_name": r["team_name"],
                "scope": r["scope"],
                "namespace": r["namespace"],
                "created_at": r["created_at"].isoformat(),
                "is_shared": False,
                "is_managed": True,
            }
            for r in rows
        ]

    # ---- platform audit ----------------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None:
        """Append one platform audit row."""
        values = [getattr(entry, c) for c in _AUDIT_COLUMNS]
        values[0] = _uuid_or_none(entry.user_id) if entry.user_id else None
        cols = ", ".join(_AUDIT_COLUMNS)
        marks = ", ".join(["%s"] * len(_AUDIT_COLUMNS))
        await self._all(f"INSERT INTO audit_logs({cols}) VALUES ({marks}) RETURNING id", values)

    async def list_audit(
        self,
        *,
        user: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        actions: Sequence[str] | None = None,
        image_only: bool = False,
        deployments_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Audit rows newest first; `user` matches a user id or an email."""
        where = ["TRUE"]
        params: list[Any] = []
        if user:
            uid = _uuid_or_none(user)
            if uid is not None:
                where.append("user_id = %s")
                params.append(uid)
            else:
                where.append("lower(email) = %s")
                params.append(user.strip().lower())
        if since is not None:
            where.append("created_at >= %s")
            params.append(since)
        if until is not None:
            where.append("created_at <= %s")
            params.append(until)
        if actions:
            where.append("action = ANY(%s)")
            params.append(list(actions))
        if image_only:
            where.append("image_ref IS NOT NULL")
        if deployments_only:
            where.append("deployment_target IS NOT NULL")
        params.append(limit)
        rows = await self._all(
            f"SELECT * FROM audit_logs WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT %s",
            params,
        )
        out = []
        for r in rows:
            item: dict[str, Any] = {"id": r["id"], "action": r["action"], "resource": r["resource"]}
            item["status"] = r["status"]
            for c in _AUDIT_COLUMNS:
                if c in item or r[c] is None:
                    continue
                item[c] = str(r[c]) if c == "user_id" else r[c]
            item["created_at"] = r["created_at"].isoformat()
            out.append(item)
        return out
