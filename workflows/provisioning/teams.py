"""`TeamStore` over the platform identity store (`mcp_sentinel.identity.store.IdentityStore`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from workflows.provisioning.activities import TeamConflict, TeamRecord, UnknownUser

if TYPE_CHECKING:
    from mcp_sentinel.identity.store import IdentityStore


class IdentityTeamStore:
    """Adapts the identity store's team methods to create-or-get semantics; connects on first use."""

    def __init__(self, dsn: str = "", store: IdentityStore | None = None) -> None:
        self._dsn = dsn
        self._store = store
        self._lock = asyncio.Lock()

    async def _get(self) -> IdentityStore:
        async with self._lock:
            if self._store is None:
                from mcp_sentinel.identity.store import IdentityStore

                self._store = await IdentityStore.open(self._dsn, max_size=4)
            return self._store

    async def close(self) -> None:
        """Release the pool (when this adapter opened it)."""
        if self._store is not None and self._dsn:
            await self._store.close()

    async def ensure_team(self, slug: str, name: str, created_by: str, namespace: str) -> tuple[TeamRecord, bool]:
        """The live team for the slug; a different display name means someone else's team."""
        from mcp_sentinel.identity.store import Conflict

        store = await self._get()
        for _ in range(2):
            team = await store.get_team(slug)
            if team is not None:
                if team.name != name:
                    raise TeamConflict(f"team slug {slug!r} is already used by team {team.name!r}")
                return TeamRecord(team.id, team.slug, team.name, team.namespace), False
            if created_by and await store.get_user(created_by) is None:
                raise UnknownUser(f"creator {created_by!r} is not a user")
            try:
                team = await store.create_team(slug, name, created_by or None)
            except Conflict:
                continue  # created concurrently: read it back
            return TeamRecord(team.id, team.slug, team.name, team.namespace), True
        raise TeamConflict(f"team slug {slug!r} is being created concurrently")

    async def delete_team(self, team_id: str) -> bool:
        """Soft-delete the team with its namespace row and memberships."""
        from mcp_sentinel.identity.store import NotFound

        try:
            await (await self._get()).delete_team(team_id)
        except NotFound:
            return False
        return True

    async def ensure_membership(self, team_id: str, user_id: str, role: str) -> bool:
        """Add (or re-role) the membership; False when it already had that role."""
        from mcp_sentinel.identity.store import NotFound

        store = await self._get()
        if any(m.user_id == user_id and m.role == role for m in await store.list_members(team_id)):
            return False
        try:
            await store.add_member(team_id, user_id, role)
        except NotFound as exc:
            raise UnknownUser(f"cannot add {user_id!r} to the team: {exc}") from exc
        return True

    async def remove_membership(self, team_id: str, user_id: str) -> bool:
        """End the membership."""
        from mcp_sentinel.identity.store import NotFound

        try:
            await (await self._get()).remove_member(team_id, user_id)
        except NotFound:
            return False
        return True
