"""`TeamStore` over the platform identity schema in Postgres (upstream §7.9 tables).

The identity store (`mcp_sentinel.identity`) owns and creates the schema; this adapter only
touches `teams`, `namespaces` and `team_memberships`, each call in one transaction.
"""

from __future__ import annotations

from typing import Any

from workflows.provisioning.activities import TeamConflict, TeamRecord


class PostgresTeamStore:
    """Team rows via psycopg (a short-lived connection per call: activities are infrequent)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, connect_timeout=10)

    def ensure_team(self, slug: str, name: str, created_by: str, namespace: str) -> tuple[TeamRecord, bool]:
        """The live team with this slug, created (with its namespace row) if missing."""
        with self._connect() as conn, conn.transaction():
            row = conn.execute(
                "SELECT id::text, display_name FROM teams WHERE slug = %s AND deleted_at IS NULL FOR UPDATE", (slug,)
            ).fetchone()
            if row is not None:
                if row[1] != name:
                    raise TeamConflict(f"team slug {slug!r} is taken by team {row[1]!r}")
                return TeamRecord(row[0], slug, name, namespace), False
            creator = conn.execute("SELECT id FROM users WHERE id::text = %s", (created_by,)).fetchone()
            team_id = conn.execute(
                "INSERT INTO teams (id, slug, display_name, created_by) VALUES (gen_random_uuid(), %s, %s, %s)"
                " RETURNING id::text",
                (slug, name, creator[0] if creator else None),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO namespaces (id, team_id, namespace, display_name, scope)"
                " VALUES (gen_random_uuid(), %s, %s, %s, 'team')",
                (team_id, namespace, name),
            )
            return TeamRecord(team_id, slug, name, namespace), True

    def delete_team(self, team_id: str) -> bool:
        """Hard delete (memberships and namespace rows cascade): only used to undo a fresh team."""
        with self._connect() as conn, conn.transaction():
            cur = conn.execute("DELETE FROM teams WHERE id::text = %s", (team_id,))
            return bool(cur.rowcount)

    def ensure_membership(self, team_id: str, user_id: str, role: str) -> bool:
        """Add the membership if missing."""
        with self._connect() as conn, conn.transaction():
            exists = conn.execute(
                "SELECT 1 FROM team_memberships WHERE team_id::text = %s AND user_id::text = %s AND deleted_at IS NULL",
                (team_id, user_id),
            ).fetchone()
            if exists:
                return False
            conn.execute(
                "INSERT INTO team_memberships (id, team_id, user_id, role) VALUES (gen_random_uuid(), %s, %s, %s)",
                (team_id, user_id, role),
            )
            return True

    def remove_membership(self, team_id: str, user_id: str) -> bool:
        """Remove the membership."""
        with self._connect() as conn, conn.transaction():
            cur = conn.execute(
                "DELETE FROM team_memberships WHERE team_id::text = %s AND user_id::text = %s", (team_id, user_id)
            )
            return bool(cur.rowcount)
