"""ApprovalWorkflow: pending -> approved -> used, or rejected, or expired; every step audited.

One workflow per approvable call: its id is derived from the call's digest
(`mcp_sentinel.policy.approvals.approval_digest`), so a caller's retries join the pending request
(signal-with-start of `requested`) and an approval can only ever be spent on that exact call.
`consume` is an Update: the workflow applies updates one at a time, so two concurrent retries of an
approved call get `used` once and `consumed` (already spent) once. Time limits are workflow timers,
so a request keeps its deadline across worker and server restarts.

* pending: waits up to `ttl_seconds` for `approve` or `reject` (else `expired`);
* approved: the next `consume` is `used`; unused for `ttl_seconds` after the approval, `expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.approvals.activities import ApprovalActivities, ApprovalAudit

TASK_QUEUE = "sentinel-approvals"
WORKFLOW_PREFIX = "approval-"
# The audit row must land; Postgres may be down for a while.
ACT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
ACT_TIMEOUT = timedelta(seconds=30)
PENDING, APPROVED, REJECTED, EXPIRED, USED = "pending", "approved", "rejected", "expired", "used"
# What `consume` answers for an approval that was already spent by an earlier retry.
CONSUMED = "consumed"
# Patch id: the approval is audited even when its use arrived in the same workflow activation.
RECORD_EVERY_APPROVAL = "record-every-approval"


@dataclass
class ApprovalRequest:
    """The call waiting for approval, as the approvers see it (arguments as canonical JSON text)."""

    digest: str
    namespace: str
    server: str
    tool: str
    human_id: str
    agent_id: str
    team_id: str
    arguments: str
    ttl_seconds: int
    grant: str = ""
    grant_namespace: str = ""
    side_effect: str = ""
    session_id: str = ""


@dataclass
class ApprovalState:
    """Where the approval stands (the `state` query, the `run` result and the memo agree)."""

    status: str
    expires_at: str
    decided_by: str = ""
    note: str = ""
    requests: int = 0


def approval_workflow_id(digest: str) -> str:
    """Stable per call: 128 bits of the digest are plenty to keep distinct calls apart."""
    return WORKFLOW_PREFIX + digest[:32]


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@workflow.defn(name="ApprovalWorkflow")
class ApprovalWorkflow:
    """One approval request; see the module docstring for the states."""

    @workflow.init
    def __init__(self, req: ApprovalRequest) -> None:
        self._req = req
        self._status = PENDING
        self._by = ""
        self._note = ""
        self._requests = 0
        self._approved = False
        self._deadline = workflow.now() + timedelta(seconds=req.ttl_seconds)

    @workflow.signal
    def requested(self) -> None:
        """The caller asked (again): counted, shown to approvers."""
        self._requests += 1

    @workflow.update
    def approve(self, by: str) -> str:
        """Approve a pending request; answers the status after the update."""
        if self._status == PENDING:
            self._status, self._by, self._approved = APPROVED, by, True
        return self._status

    @workflow.update
    def reject(self, by: str, note: str) -> str:
        """Reject a pending request; answers the status after the update."""
        if self._status == PENDING:
            self._status, self._by, self._note = REJECTED, by, note[:500]
        return self._status

    @workflow.update
    def consume(self) -> str:
        """Spend an approved request: `used` exactly once, then `consumed`; else the current status."""
        if self._status == APPROVED:
            self._status = USED
            return USED
        return CONSUMED if self._status == USED else self._status

    @workflow.query
    def state(self) -> ApprovalState:
        """Where the approval stands."""
        return ApprovalState(self._status, _rfc3339(self._deadline), self._by, self._note, self._requests)

    async def _record(self, status: str) -> None:
        r = self._req
        await workflow.execute_activity_method(
            ApprovalActivities.record,
            ApprovalAudit(workflow.info().workflow_id, status, r.namespace, r.server, r.tool, r.human_id, r.agent_id,
                          self._by, self._note),  # fmt: skip
            start_to_close_timeout=ACT_TIMEOUT,
            retry_policy=ACT_RETRY,
        )

    def _memo(self) -> None:
        # The API lists approvals from visibility: status and deadline ride in the memo.
        workflow.upsert_memo({"status": self._status, "expiresAt": _rfc3339(self._deadline), "decidedBy": self._by})

    async def _wait(self, until: str) -> bool:
        """Wait until the status leaves `until` or the deadline passes; False on timeout."""
        remaining = (self._deadline - workflow.now()).total_seconds()
        if remaining <= 0:
            return self._status != until
        try:
            await workflow.wait_condition(lambda: self._status != until, timeout=timedelta(seconds=remaining))
        except TimeoutError:
            return self._status != until
        return True

    @workflow.run
    async def run(self, req: ApprovalRequest) -> ApprovalState:
        """Wait for a decision, then for the one use; every transition is audited."""
        await self._record("requested")
        if not await self._wait(PENDING):
            self._status = EXPIRED
        if self._status == APPROVED:
            self._deadline = workflow.now() + timedelta(seconds=req.ttl_seconds)
            self._memo()
            await self._record(APPROVED)
            if not await self._wait(APPROVED):
                self._status = EXPIRED
        elif self._approved and workflow.patched(RECORD_EVERY_APPROVAL):
            # Approved and already used: both updates applied in one activation (a busy worker, a
            # caller retrying the moment the owner approves). The approval is audited all the same;
            # histories from before this branch replay unpatched (they recorded only `used`).
            self._memo()
            await self._record(APPROVED)
        self._memo()
        await self._record(self._status)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()
