"""ServerLifecycle: reconcile one MCPServer into what runs it; ServerReconcile: every server, on a schedule.

One workflow id per server (`server-lifecycle/<namespace>/<name>`). The API signal-with-starts it
on create/update/delete: a running reconcile takes the signal as "go round once more" instead of
a second workflow racing the first. Each pass is level-triggered (read the server, converge), so
a delete is just a pass that finds the server gone. A rollout is awaited up to the Deployment's
progress deadline; a failure compensates by restoring the last good revision.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows.lifecycle.activities import (
        Applied,
        Condition,
        LifecycleActivities,
        Rollout,
        ServerKey,
        StatusReport,
    )

TASK_QUEUE = "sentinel-lifecycle"
SCHEDULE_ID = "server-reconcile"
SIGNAL = "reconcile"
POLL = timedelta(seconds=5)
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
    non_retryable_error_types=["Invalid"],
)
STEP_TIMEOUT = timedelta(seconds=60)


def lifecycle_workflow_id(namespace: str, name: str) -> str:
    """The one workflow id of a server's lifecycle."""
    return f"server-lifecycle/{namespace}/{name}"


@dataclass
class LifecycleResult:
    """What the last pass did: `outcome` is ready, rolled-back, failed, progressing, invalid or deleted."""

    outcome: str = ""
    passes: int = 0
    message: str = ""


def conditions(applied: Applied, rollout: Rollout, rollout_note: str) -> list[Condition]:
    """The status conditions of a pass (pure: the workflow decides, the activity only writes)."""
    if applied.policy_error:
        policy = Condition("PolicyDelivered", "False", "InvalidPolicy", applied.policy_error)
    elif not applied.gateway:
        policy = Condition("PolicyDelivered", "False", "GatewayDisabled", "no gateway: no policy is delivered")
    else:
        policy = Condition("PolicyDelivered", "True", "Delivered", f"revision {applied.policy_revision}")
    if not applied.gateway:
        gateway = Condition("GatewayReady", "False", "GatewayDisabled", "the server runs without the gateway sidecar")
    elif rollout.phase == "ready":
        gateway = Condition("GatewayReady", "True", "Available", rollout.message)
    else:
        gateway = Condition("GatewayReady", "False" if rollout.phase == "failed" else "Unknown", "NotAvailable",
                            rollout.message)
    if rollout.phase == "ready" and not rollout_note:
        ready = Condition("Ready", "True", "Available", rollout.message)
    elif rollout_note:
        ready = Condition("Ready", "False", "RolloutFailed", rollout_note)
    elif rollout.phase == "progressing":
        ready = Condition("Ready", "Unknown", "Progressing", rollout.message)
    else:
        ready = Condition("Ready", "False", "NotAvailable", rollout.message)
    return [ready, gateway, policy]


@workflow.defn(name="ServerLifecycle")
class ServerLifecycle:
    """Reconcile one MCPServer until no change request is pending."""

    def __init__(self) -> None:
        self._pending = True  # a plain start is a request too

    @workflow.signal(name=SIGNAL)
    def reconcile(self) -> None:
        """Something changed: run one more pass after the current one."""
        self._pending = True

    @workflow.run
    async def run(self, key: ServerKey) -> LifecycleResult:
        """Passes until quiet; returns the last pass's outcome."""
        result = LifecycleResult()
        while self._pending:
            self._pending = False
            result.passes += 1
            result.outcome, result.message = await self._pass(key)
        return result

    async def _pass(self, key: ServerKey) -> tuple[str, str]:
        try:
            applied = await workflow.execute_activity_method(
                LifecycleActivities.apply, key, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
            )
        except ActivityError as exc:
            message = f"apply failed: {exc.cause or exc}"
            await self._report(key, 0, "", "", [Condition("Ready", "False", "ApplyFailed", message)])
            return "failed", message
        if not applied.exists:
            removed = await workflow.execute_activity_method(
                LifecycleActivities.clean_up, key, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
            )
            return "deleted", f"{removed} objects removed"
        if applied.invalid:
            await self._report(key, applied.generation, applied.url, applied.policy_revision,
                               [Condition("Ready", "False", "InvalidSpec", applied.invalid)])
            return "invalid", applied.invalid
        note = ""
        if applied.rolled:
            rollout = await self._await_rollout(key, applied.progress_deadline_seconds)
            if rollout.phase != "ready":
                # Compensation: the new revision did not become available in time.
                back = await workflow.execute_activity_method(
                    LifecycleActivities.roll_back, key, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
                )
                note = f"revision {applied.spec_hash} failed ({rollout.message}); {back.message}"
        else:
            rollout = await workflow.execute_activity_method(
                LifecycleActivities.rollout_state, key, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
            )
            if applied.held_back:
                note = f"revision {applied.spec_hash} failed earlier and stays rolled back until the server changes"
        if rollout.phase == "ready" and not note:
            await workflow.execute_activity_method(
                LifecycleActivities.mark_good, key, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
            )
        await self._report(key, applied.generation, applied.url, applied.policy_revision,
                           conditions(applied, rollout, note))
        if note:
            return "rolled-back", note
        return rollout.phase, rollout.message

    async def _await_rollout(self, key: ServerKey, deadline_seconds: int) -> Rollout:
        deadline = workflow.now() + timedelta(seconds=deadline_seconds)
        while True:
            rollout = await workflow.execute_activity_method(
                LifecycleActivities.rollout_state, key, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
            )
            if rollout.phase in ("ready", "failed"):
                return rollout
            if workflow.now() >= deadline:
                return Rollout("failed", f"not available after {deadline_seconds}s ({rollout.message})",
                               rollout.available, rollout.replicas)
            await workflow.sleep(POLL)

    async def _report(self, key: ServerKey, generation: int, url: str, revision: str, conds: list[Condition]) -> None:
        await workflow.execute_activity_method(
            LifecycleActivities.report,
            StatusReport(key, generation, url, revision, conds),
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=STEP_RETRY,
        )


@dataclass
class ServerReconcileResult:
    """How many servers a periodic pass reconciled, which were already in flight, which failed."""

    checked: int = 0
    in_flight: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)


@workflow.defn(name="ServerReconcile")
class ServerReconcile:
    """One periodic pass (the `server-reconcile` Schedule): a ServerLifecycle per server, repairing drift."""

    @workflow.run
    async def run(self) -> ServerReconcileResult:
        """Start (or find running) each server's lifecycle and wait for the started ones."""
        keys = await workflow.execute_activity_method(
            LifecycleActivities.list_servers, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
        )
        result = ServerReconcileResult(checked=len(keys))
        handles = []
        for key in keys:
            wid = lifecycle_workflow_id(key.namespace, key.name)
            try:
                handle = await workflow.start_child_workflow(
                    ServerLifecycle.run, key, id=wid, parent_close_policy=ParentClosePolicy.ABANDON
                )
            except WorkflowAlreadyStartedError:
                result.in_flight.append(wid)  # the API's (or a previous pass's) run covers this server
                continue
            handles.append((wid, handle))
        outs = await asyncio.gather(*(h for _, h in handles), return_exceptions=True)
        for (wid, _), out in zip(handles, outs, strict=True):
            result.outcomes[wid] = out.outcome if isinstance(out, LifecycleResult) else f"failed: {out}"
        return result
