"""The approval's audit trail: every transition is a row in the platform audit log (Postgres).

Approvals are a platform decision made by people, like grant changes, so they land in the same
log the API writes (`audit_logs`, `GET /api/admin/audit`), with action `approval_<status>`; the
gateway's own decisions on the calls (approval_required, approval_used, ...) are audit events of
the call in ClickHouse. The sink is the identity store unless a test passes another one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from temporalio import activity

if TYPE_CHECKING:
    from mcp_sentinel.identity.records import AuditEntry
    from mcp_sentinel.identity.store import IdentityStore


@dataclass
class ApprovalAudit:
    """One transition of one approval (`status`: requested, approved, rejected, expired, used)."""

    approval_id: str
    status: str
    namespace: str
    server: str
    tool: str
    human_id: str
    agent_id: str
    by: str = ""
    note: str = ""


class AuditSink(Protocol):
    """Where approval rows go (the identity store's `audit`)."""

    async def audit(self, entry: AuditEntry) -> None:
        """Append one row."""


class StoreSink:
    """The identity store, opened on first use from a DSN."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._store: IdentityStore | None = None
        self._lock = asyncio.Lock()

    async def audit(self, entry: AuditEntry) -> None:
        """Append through the identity store's platform audit log."""
        if not self._dsn:
            raise RuntimeError("POSTGRES_DSN is not set: approval audit rows cannot be written")
        async with self._lock:
            if self._store is None:
                from mcp_sentinel.identity.store import IdentityStore

                self._store = await IdentityStore.open(self._dsn, max_size=2)
        await self._store.audit(entry)


class ApprovalActivities:
    """Activities of ApprovalWorkflow, bound to an audit sink."""

    def __init__(self, sink: AuditSink) -> None:
        self.sink = sink

    @activity.defn(name="approvals.record")
    async def record(self, row: ApprovalAudit) -> None:
        """Write one audit row (retried by the workflow until it lands)."""
        from mcp_sentinel.identity.records import AuditEntry

        message = f"{row.tool} for {row.human_id or '-'} via {row.agent_id or '-'}"
        if row.note:
            message += f": {row.note}"
        await self.sink.audit(
            AuditEntry(
                action=f"approval_{row.status}",
                resource=f"approval/{row.namespace}/{row.server}/{row.approval_id}",
                status="success",
                email=row.by or None,
                namespace=row.namespace,
                message=message[:1000],
                source="workflow:approvals",
                server_name=row.server,
            )
        )
