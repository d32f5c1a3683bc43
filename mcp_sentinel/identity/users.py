"""Users and their sign-in identities (password, OIDC)."""

from __future__ import annotations

import uuid

from mcp_sentinel.identity.db import Db
from mcp_sentinel.identity.records import Conflict, LinkRequired, NotFound, User, _user, _uuid_or_none
from mcp_sentinel.lazy_errors import error_type


class UserQueries(Db):
    """Users and their sign-in identities (password, OIDC)."""

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
