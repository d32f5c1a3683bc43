"""ApprovalWorkflow against the real Temporal dev server, audited into real Postgres."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from mcp_sentinel.identity.store import IdentityStore
from mcp_sentinel.policy.approvals import approval_digest
from tests.helpers.approvals import approval_request as call
from tests.helpers.approvals import approvals_worker
from workflows.approvals.client import (
    ApprovalNotFound,
    decide,
    get_approval,
    list_approvals,
    outcome_of,
    parse_approval_id,
    request_or_consume,
)
from workflows.approvals.workflows import ApprovalRequest, ApprovalState, ApprovalWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")




async def audit_actions(store: IdentityStore, approval: str) -> list[str]:
    wid, _run = parse_approval_id(approval)
    rows = await store.list_audit(limit=500)
    return sorted(r["action"] for r in rows if str(r.get("resource", "")).endswith("/" + wid))


async def until(check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        got = await check()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


async def test_approved_call_is_used_once_and_the_same_call_then_needs_a_new_approval(
    temporal_env: WorkflowEnvironment, task_queue: str, pg_dsn: str, identity_store: IdentityStore
) -> None:
    client = temporal_env.client
    req = call()
    async with approvals_worker(client, task_queue, pg_dsn):
        first = await request_or_consume(client, req, task_queue=task_queue)
        assert first.status == "pending" and first.expires_at
        again = await request_or_consume(client, req, task_queue=task_queue)
        assert again.approval_id == first.approval_id and again.status == "pending"  # retries join it
        listed = await until(lambda: _listed(client, first.approval_id))
        assert listed["tool"] == "delete_document" and listed["humanID"] == "alice"
        assert json.loads(listed["arguments"]) == json.loads(req.arguments)
        assert await decide(client, first.approval_id, approve=True, by="owner@example.com") == "approved"
        # A second decision does not change it.
        assert await decide(client, first.approval_id, approve=False, by="x@example.com") == "approved"
        used = await request_or_consume(client, req, task_queue=task_queue)
        assert used.status == "used" and used.approval_id == first.approval_id
        after = await request_or_consume(client, req, task_queue=task_queue)
        assert after.status == "pending" and after.approval_id != first.approval_id
        assert after.previous == "used" and first.previous == ""
        detail = await get_approval(client, first.approval_id)
        assert detail["status"] == "used" and detail["decidedBy"] == "owner@example.com"
        assert detail["requests"] == 1  # retries read the state; they add nothing to the history
        assert await until(lambda: _actions_are(identity_store, first.approval_id, 4)), await audit_actions(
            identity_store, first.approval_id)
    # Rows are per call (workflow id): this request's three, and the next request's `requested`.
    assert await audit_actions(identity_store, first.approval_id) == ["approval_approved", "approval_requested",
                                                             "approval_requested", "approval_used"]  # fmt: skip


async def _listed(client: Client, approval: str) -> dict[str, Any] | None:
    for item in await list_approvals(client):
        if item["id"] == approval:
            return item
    return None


async def _actions_are(store: IdentityStore, approval: str, n: int) -> bool:
    return len(await audit_actions(store, approval)) >= n


async def test_concurrent_retries_of_an_approved_call_spend_it_once(
    temporal_env: WorkflowEnvironment, task_queue: str, pg_dsn: str
) -> None:
    client = temporal_env.client
    req = call()
    async with approvals_worker(client, task_queue, pg_dsn):
        first = await request_or_consume(client, req, task_queue=task_queue)
        await decide(client, first.approval_id, approve=True, by="owner@example.com")
        # Bounded: a hang here must fail this test, not the session loop's teardown (CI once did).
        answers = await asyncio.wait_for(asyncio.gather(
            *(request_or_consume(client, req, task_queue=task_queue) for _ in range(4)), return_exceptions=True
        ), 60)  # fmt: skip
    # The losers wait (at most 5 s) for the spent run to close, then start the next request; on a
    # loaded machine that wait may run out, which the API answers 503: never a second `used`.
    statuses = ["timeout" if isinstance(a, TimeoutError) else a.status for a in answers]  # type: ignore[union-attr]
    assert statuses.count("used") == 1 and set(statuses) <= {"used", "pending", "timeout"}, answers


async def test_outcome_of_a_spent_run_does_not_wait_for_the_next_request(
    temporal_env: WorkflowEnvironment, task_queue: str, pg_dsn: str
) -> None:
    """The race behind a CI hang: a caller reads the spent run's description, another caller starts the
    next request, and the first then asks for "the" result: it must be the described run's, at once."""
    client = temporal_env.client
    req = call()
    async with approvals_worker(client, task_queue, pg_dsn):
        first = await request_or_consume(client, req, task_queue=task_queue)
        await decide(client, first.approval_id, approve=True, by="owner@example.com")
        assert (await request_or_consume(client, req, task_queue=task_queue)).status == "used"
        wid, run = parse_approval_id(first.approval_id)
        await client.get_workflow_handle(wid, run_id=run).result()
        spent = await client.get_workflow_handle(wid).describe()
        following = await request_or_consume(client, req, task_queue=task_queue)
        assert following.status == "pending" and following.approval_id != first.approval_id
        outcome = await asyncio.wait_for(outcome_of(client, spent, req.ttl_seconds, datetime.now(UTC)), 20)
        assert outcome == (None, "used")
        running = await client.get_workflow_handle(wid).describe()
        assert await outcome_of(client, running, req.ttl_seconds, datetime.now(UTC)) == (None, "")


async def test_an_approval_used_in_the_same_activation_is_still_audited(
    temporal_env: WorkflowEnvironment, task_queue: str, pg_dsn: str, identity_store: IdentityStore
) -> None:
    """Under load the approval and its use can reach the workflow together (CI saw `approved` missing
    from the audit); here both updates wait at the server while no worker runs."""
    client = temporal_env.client
    req = call()
    async with approvals_worker(client, task_queue, pg_dsn):
        first = await request_or_consume(client, req, task_queue=task_queue)
        assert await until(lambda: _actions_are(identity_store, first.approval_id, 1))
    wid, run = parse_approval_id(first.approval_id)
    handle = client.get_workflow_handle(wid, run_id=run, result_type=ApprovalState)
    approving = asyncio.create_task(handle.execute_update(ApprovalWorkflow.approve, "owner@example.com"))
    await asyncio.sleep(1.0)  # the approval reaches the server first
    using = asyncio.create_task(handle.execute_update(ApprovalWorkflow.consume))
    await asyncio.sleep(1.0)
    async with approvals_worker(client, task_queue, pg_dsn):
        assert await asyncio.wait_for(approving, 60) == "approved"
        assert await asyncio.wait_for(using, 60) == "used"
        assert (await asyncio.wait_for(handle.result(), 60)).status == "used"
        assert await until(lambda: _actions_are(identity_store, first.approval_id, 3))
    assert await audit_actions(identity_store, first.approval_id) == ["approval_approved", "approval_requested",
                                                             "approval_used"]  # fmt: skip


async def test_rejected_request_answers_rejected_and_is_audited_with_the_approver(
    temporal_env: WorkflowEnvironment, task_queue: str, pg_dsn: str, identity_store: IdentityStore
) -> None:
    client = temporal_env.client
    req = call()
    async with approvals_worker(client, task_queue, pg_dsn):
        first = await request_or_consume(client, req, task_queue=task_queue)
        assert await decide(client, first.approval_id, approve=False, by="owner@example.com",
                            note="not on a Friday") == "rejected"  # fmt: skip
        await client.get_workflow_handle(parse_approval_id(first.approval_id)[0]).result()
        retry = await request_or_consume(client, req, task_queue=task_queue)
        assert retry.status == "rejected" and retry.approval_id == first.approval_id
        # Once the rejection is older than the ttl, the same call may ask again.
        later = datetime.now(UTC) + timedelta(seconds=req.ttl_seconds + 1)
        fresh = await request_or_consume(client, req, task_queue=task_queue, now=later)
        assert fresh.status == "pending" and fresh.approval_id != first.approval_id
        with pytest.raises(ApprovalNotFound):
            await decide(client, first.approval_id, approve=True, by="owner@example.com")
    rows = [r for r in await identity_store.list_audit(limit=500) if r["action"] == "approval_rejected"]
    mine = [r for r in rows if r["resource"].endswith(parse_approval_id(first.approval_id)[0])]
    assert mine and mine[0]["email"] == "owner@example.com" and "not on a Friday" in mine[0]["message"]


async def test_unanswered_request_expires_and_an_approval_unused_in_its_ttl_expires(
    temporal_env: WorkflowEnvironment, task_queue: str, pg_dsn: str, identity_store: IdentityStore
) -> None:
    client = temporal_env.client
    async with approvals_worker(client, task_queue, pg_dsn):
        lonely = await request_or_consume(client, call(ttl=1), task_queue=task_queue)
        approved_req = call(ttl=2)
        approved = await request_or_consume(client, approved_req, task_queue=task_queue)
        await decide(client, approved.approval_id, approve=True, by="owner@example.com")
        for a in (lonely, approved):
            await client.get_workflow_handle(parse_approval_id(a.approval_id)[0]).result()
        assert (await get_approval(client, lonely.approval_id))["status"] == "expired"
        assert (await get_approval(client, approved.approval_id))["status"] == "expired"
        # The expired approval is not spent: the same call starts a new request.
        again = await request_or_consume(client, approved_req, task_queue=task_queue)
        assert again.status == "pending" and again.approval_id != approved.approval_id
        assert again.previous == "expired"  # the gateway tells the caller why it asks again
    assert "approval_expired" in await audit_actions(identity_store, lonely.approval_id)
    assert "approval_expired" in await audit_actions(identity_store, approved.approval_id)


async def test_unknown_or_malformed_approval_ids_are_not_found(temporal_env: WorkflowEnvironment) -> None:
    for bad in ("nope", "0" * 32 + "." + str(uuid.uuid4()), "../" + "0" * 30):
        with pytest.raises(ApprovalNotFound):
            await get_approval(temporal_env.client, bad)
        with pytest.raises(ApprovalNotFound):
            await decide(temporal_env.client, bad, approve=True, by="x")


async def test_recorded_approval_histories_replay(temporal_env: WorkflowEnvironment, task_queue: str,
                                                  pg_dsn: str) -> None:  # fmt: skip
    client = temporal_env.client
    ids = []
    async with approvals_worker(client, task_queue, pg_dsn):
        used = call()
        a = await request_or_consume(client, used, task_queue=task_queue)
        await decide(client, a.approval_id, approve=True, by="o")
        await request_or_consume(client, used, task_queue=task_queue)
        r = await request_or_consume(client, call(), task_queue=task_queue)
        await decide(client, r.approval_id, approve=False, by="o", note="no")
        e = await request_or_consume(client, call(ttl=1), task_queue=task_queue)
        for x in (a, r, e):
            wid, run = parse_approval_id(x.approval_id)
            await client.get_workflow_handle(wid, run_id=run).result()
            ids.append((wid, run))
    histories = [await client.get_workflow_handle(w, run_id=r).fetch_history() for w, r in ids]
    replayer = Replayer(workflows=[ApprovalWorkflow])
    for h in histories:
        await replayer.replay_workflow(h)


async def test_a_caller_over_the_pending_cap_gets_limited_not_a_new_request(
    temporal_env: WorkflowEnvironment, task_queue: str, pg_dsn: str
) -> None:
    client = temporal_env.client
    tool = f"wipe_{uuid.uuid4().hex[:6]}"  # its own caller key space: other tests' requests do not count
    human = f"h-{uuid.uuid4().hex[:6]}"

    def mine(n: int) -> ApprovalRequest:
        r = call(tool, id=n)
        return ApprovalRequest(approval_digest(namespace="ns", server="srv", human_id=human, agent_id="bot",
                                               team_id="red", tool=tool, arguments={"id": n}),
                               "ns", "srv", tool, human, "bot", "red", r.arguments, 600)  # fmt: skip

    async with approvals_worker(client, task_queue, pg_dsn):
        first = [await request_or_consume(client, mine(i), task_queue=task_queue, max_pending=2) for i in range(2)]
        assert [a.status for a in first] == ["pending", "pending"]

        async def counted() -> bool:
            from workflows.approvals.client import _pending_of

            return await _pending_of(client, mine(0)) >= 2

        assert await until(counted)  # visibility catches up
        over = await request_or_consume(client, mine(3), task_queue=task_queue, max_pending=2)
        assert over.status == "limited" and over.approval_id == ""
        # Retries of a request that exists are not new requests: still answered.
        again = await request_or_consume(client, mine(0), task_queue=task_queue, max_pending=2)
        assert again.status == "pending" and again.approval_id == first[0].approval_id


async def test_retrying_a_pending_request_adds_nothing_to_its_history(
    temporal_env: WorkflowEnvironment, task_queue: str, pg_dsn: str
) -> None:
    """An agent retrying every second for the request's whole ttl must not run into the history limit."""
    client = temporal_env.client
    req = call()
    async with approvals_worker(client, task_queue, pg_dsn):
        first = await request_or_consume(client, req, task_queue=task_queue)
        wid, run = parse_approval_id(first.approval_id)
        handle = client.get_workflow_handle(wid, run_id=run)

        async def waiting() -> bool:  # the audit row written and the ttl timer started: steady state
            events = (await handle.fetch_history()).events
            return any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in events)

        assert await until(waiting)
        before = len((await handle.fetch_history()).events)
        for _ in range(30):
            assert (await request_or_consume(client, req, task_queue=task_queue)).approval_id == first.approval_id
        assert len((await handle.fetch_history()).events) == before
