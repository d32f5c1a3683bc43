"""The platform audit log (who changed what through the API)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mcp_sentinel.identity.db import Db
from mcp_sentinel.identity.records import _AUDIT_COLUMNS, AuditEntry, _uuid_or_none


class AuditQueries(Db):
    """The platform audit log (who changed what through the API)."""

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
