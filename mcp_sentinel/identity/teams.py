"""Teams, memberships and team namespaces."""

from __future__ import annotations

import uuid
from typing import Any

from mcp_sentinel.identity.principal import team_namespace
from mcp_sentinel.identity.records import (
    _MEMBER_SELECT,
    _TEAM_SELECT,
    SLUG_RE,
    Conflict,
    Membership,
    NotFound,
    Team,
    _membership,
    _team,
    _uuid_or_none,
)
from mcp_sentinel.identity.users import UserQueries
from mcp_sentinel.lazy_errors import error_type


class TeamQueries(UserQueries):
    """Teams, memberships and team namespaces."""

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
