"""The API's side of approvals: ask-or-spend for the gateway, list, approve and reject for people.

An approval id is `<workflow id suffix>.<run id>`: the workflow id names the call (its digest), the
run id names one request for it. After an approval is used (or expires) the same call starts a
new run, so a stale link can never approve the next request for the same call.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from workflows.approvals.workflows import (
    APPROVED,
    CONSUMED,
    PENDING,
    REJECTED,
    TASK_QUEUE,
    USED,
    WORKFLOW_PREFIX,
    ApprovalRequest,
    ApprovalState,
    ApprovalWorkflow,
    approval_workflow_id,
)

ARGUMENTS_PREVIEW = 4096
# A spent approval's run closes right after its audit row: wait that long before starting the next request.
CLOSE_WAIT_SECONDS = 5.0
# `request_or_consume` answers this instead of starting a request over the caller's cap.
LIMITED = "limited"
_ID = re.compile(r"^([0-9a-f]{32})\.([0-9a-f-]{36})$")
LIST_QUERY = 'WorkflowType="ApprovalWorkflow" AND ExecutionStatus="Running"'


class ApprovalNotFound(LookupError):
    """No such approval (or it is no longer running)."""


@dataclass(frozen=True)
class GatewayAnswer:
    """What the gateway does with the call: `used` (forward it once), `pending` or `rejected` (deny)."""

    status: str
    approval_id: str
    expires_at: str = ""
    # How this call's previous request ended (`used`, `expired`, `rejected`) when a new one was started.
    previous: str = ""


def approval_id(workflow_id: str, run_id: str) -> str:
    """The public id of one request."""
    return f"{workflow_id.removeprefix(WORKFLOW_PREFIX)}.{run_id}"


def parse_approval_id(value: str) -> tuple[str, str]:
    """(workflow id, run id) of a public id; ApprovalNotFound when malformed."""
    m = _ID.fullmatch(value)
    if m is None:
        raise ApprovalNotFound(value)
    return WORKFLOW_PREFIX + m.group(1), m.group(2)


def _not_running(exc: BaseException) -> bool:
    if isinstance(exc, RPCError):
        return exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
    return isinstance(exc, WorkflowUpdateFailedError)


async def request_or_consume(
    client: Client,
    req: ApprovalRequest,
    *,
    task_queue: str = TASK_QUEUE,
    now: datetime | None = None,
    max_pending: int = 0,
) -> GatewayAnswer:
    """Spend an approved request for this call, else join or start the pending one.

    A request that was rejected keeps answering `rejected` for its ttl (a caller cannot pester the
    approvers with retries); one that was used or expired is followed by a fresh request. With
    `max_pending`, a caller (human and agent on one server) that already has that many running
    requests gets `limited` instead of a new one: an agent looping over varying arguments cannot
    flood the owners' list.
    """
    wid = approval_workflow_id(req.digest)
    previous = ""
    try:
        desc = await client.get_workflow_handle(wid).describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        desc = None
    if desc is not None and desc.status == WorkflowExecutionStatus.RUNNING:
        run = approval_id(wid, desc.run_id)
        handle = client.get_workflow_handle(wid, run_id=desc.run_id, result_type=ApprovalState)
        try:
            # A query writes no history: a caller retrying a pending request for hours grows nothing.
            # Only spending an approval is an Update (applied one at a time: `used` exactly once).
            state = await handle.query(ApprovalWorkflow.state)
            # `used` read from the state was spent by an earlier call: only the Update's answer spends.
            status = CONSUMED if state.status == USED else state.status
            if status == APPROVED:
                status = await handle.execute_update(ApprovalWorkflow.consume)
            if status == USED:
                return GatewayAnswer(USED, run)
            if status == PENDING:
                return GatewayAnswer(PENDING, run, state.expires_at)
            if status == REJECTED:
                return GatewayAnswer(REJECTED, run)
            # Spent or expired while the run records it: the next request can start once the run closed
            # (bounded: an audit store that is down keeps the run open, and the gateway answers 503).
            previous = USED if status == CONSUMED else status
            await asyncio.wait_for(handle.result(), CLOSE_WAIT_SECONDS)
        except (RPCError, WorkflowUpdateFailedError) as exc:
            if not _not_running(exc):
                raise
    closed, last = await _closed(client, wid, req.ttl_seconds, now or datetime.now(UTC))
    if closed is not None:
        return closed
    previous = previous or last
    if max_pending and await _pending_of(client, req) >= max_pending:
        return GatewayAnswer(LIMITED, "", previous=previous)
    started = await client.start_workflow(
        ApprovalWorkflow.run,
        req,
        id=wid,
        task_queue=task_queue,
        start_signal="requested",
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        memo=_memo(req),
    )
    desc = await started.describe()
    state = await started.query(ApprovalWorkflow.state)
    return GatewayAnswer(PENDING, approval_id(wid, desc.run_id), state.expires_at, previous)


async def _closed(client: Client, wid: str, ttl: int, now: datetime) -> tuple[GatewayAnswer | None, str]:
    """How the call's last request ended; with `rejected` as the answer while that is younger than `ttl`."""
    try:
        desc = await client.get_workflow_handle(wid).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None, ""
        raise
    return await outcome_of(client, desc, ttl, now)


async def outcome_of(
    client: Client, desc: WorkflowExecutionDescription, ttl: int, now: datetime
) -> tuple[GatewayAnswer | None, str]:
    """`_closed` for the run `desc` describes: (None, "") while it runs, else its final status."""
    if desc.status != WorkflowExecutionStatus.COMPLETED or desc.close_time is None:
        return None, ""
    # That run, not "the latest run": a concurrent caller may have started the next request since
    # `desc` was read, and the latest run's result comes only when it is decided (hours). CI saw
    # concurrent retries of a spent approval hang here.
    ended = client.get_workflow_handle(desc.id, run_id=desc.run_id, result_type=ApprovalState)
    state: ApprovalState = await ended.result(follow_runs=False)
    if state.status == REJECTED and desc.close_time + timedelta(seconds=ttl) > now:
        return GatewayAnswer(REJECTED, approval_id(desc.id, desc.run_id)), REJECTED
    return None, state.status


async def _pending_of(client: Client, req: ApprovalRequest) -> int:
    """Running requests of this caller on this server (from visibility: eventually consistent, a cap not a count)."""
    n = 0
    async for ex in client.list_workflows(LIST_QUERY):
        memo = await ex.memo()
        if (memo.get("namespace"), memo.get("server"), memo.get("humanID"), memo.get("agentID")) == (
            req.namespace, req.server, req.human_id, req.agent_id
        ):  # fmt: skip
            n += 1
    return n


def _memo(req: ApprovalRequest) -> dict[str, Any]:
    return {
        "namespace": req.namespace,
        "server": req.server,
        "tool": req.tool,
        "humanID": req.human_id,
        "agentID": req.agent_id,
        "teamID": req.team_id,
        "sideEffect": req.side_effect,
        "grant": f"{req.grant_namespace}/{req.grant}" if req.grant else "",
        "arguments": req.arguments[:ARGUMENTS_PREVIEW],
        "argumentsTruncated": len(req.arguments) > ARGUMENTS_PREVIEW,
        "status": PENDING,
    }


def _summary(wid: str, run_id: str, memo: dict[str, Any], start: datetime) -> dict[str, Any]:
    return {**memo, "id": approval_id(wid, run_id), "requestedAt": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


async def list_approvals(client: Client, *, limit: int = 500) -> list[dict[str, Any]]:
    """Every running approval (pending or approved-not-used), newest first, from visibility."""
    out: list[dict[str, Any]] = []
    async for ex in client.list_workflows(LIST_QUERY, limit=limit):
        memo = await ex.memo()
        out.append(_summary(ex.id, ex.run_id, dict(memo), ex.start_time))
    out.sort(key=lambda a: a["requestedAt"], reverse=True)
    return out


async def get_approval(client: Client, public_id: str) -> dict[str, Any]:
    """One approval (running or closed) with its live state; ApprovalNotFound when unknown."""
    wid, run_id = parse_approval_id(public_id)
    handle = client.get_workflow_handle(wid, run_id=run_id, result_type=ApprovalState)
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApprovalNotFound(public_id) from None
        raise
    memo = dict(await desc.memo())
    out = _summary(wid, run_id, memo, desc.start_time)
    if desc.status == WorkflowExecutionStatus.RUNNING:
        state: ApprovalState = await handle.query(ApprovalWorkflow.state)
    elif desc.status == WorkflowExecutionStatus.COMPLETED:
        state = await handle.result()
    else:
        raise ApprovalNotFound(public_id)
    out.update(status=state.status, expiresAt=state.expires_at, decidedBy=state.decided_by, note=state.note,
               requests=state.requests)  # fmt: skip
    return out


async def decide(client: Client, public_id: str, *, approve: bool, by: str, note: str = "") -> str:
    """Approve or reject one request; the status after it (unchanged when it was no longer pending)."""
    wid, run_id = parse_approval_id(public_id)
    handle = client.get_workflow_handle(wid, run_id=run_id, result_type=ApprovalState)
    try:
        if approve:
            return await handle.execute_update(ApprovalWorkflow.approve, by)
        return await handle.execute_update(ApprovalWorkflow.reject, args=[by, note])
    except (RPCError, WorkflowUpdateFailedError) as exc:
        if _not_running(exc):
            raise ApprovalNotFound(public_id) from None
        raise
