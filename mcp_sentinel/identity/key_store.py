"""API keys and registry credentials: created, listed, revoked, resolved."""

from __future__ import annotations

import uuid

from mcp_sentinel.identity import keys as keymod
from mcp_sentinel.identity.db import Db
from mcp_sentinel.identity.records import (
    _KEY_KINDS,
    LAST_USED_GRANULARITY,
    KeySummary,
    KeyTable,
    NotFound,
    User,
    _key,
    _user,
)


class KeyQueries(Db):
    """API keys and registry credentials: created, listed, revoked, resolved."""

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
