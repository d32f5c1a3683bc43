"""PolicyReconcile: re-render every server's policy from the CRDs and report what drifted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.reconcile.activities import PolicyActivities, RenderOutcome, RenderRequest, ServerRef

TASK_QUEUE = "sentinel-reconcile"
SCHEDULE_ID = "policy-reconcile"

# A pass runs again soon anyway: a few quick retries, then report the server as failed.
RENDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=3
)
BATCH = 16


@dataclass
class ReconcileResult:
    """How many servers were checked, which drifted (and were repaired) and which could not be rendered."""

    checked: int = 0
    drifted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@workflow.defn(name="PolicyReconcile")
class PolicyReconcile:
    """One reconcile pass (started by the `policy-reconcile` Schedule)."""

    @workflow.run
    async def run(self) -> ReconcileResult:
        """List servers, render each (bounded fan-out), report drift."""
        servers = await workflow.execute_activity_method(
            PolicyActivities.list_servers, start_to_close_timeout=timedelta(seconds=60), retry_policy=RENDER_RETRY
        )
        result = ReconcileResult(checked=len(servers))
        drifted: list[ServerRef] = []
        for i in range(0, len(servers), BATCH):
            outcomes = await asyncio.gather(*(self._render(s) for s in servers[i : i + BATCH]))
            for ref, out in zip(servers[i : i + BATCH], outcomes, strict=True):
                key = f"{ref.namespace}/{ref.name}"
                if out.error:
                    result.failed.append(f"{key}: {out.error}")
                elif out.changed:
                    result.drifted.append(key)
                    drifted.append(ref)
        await workflow.execute_activity_method(
            PolicyActivities.report_drift,
            drifted,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RENDER_RETRY,
        )
        workflow.logger.info(
            "policy reconcile: %d checked, drifted=%s, failed=%s", result.checked, result.drifted, result.failed
        )
        return result

    async def _render(self, ref: ServerRef) -> RenderOutcome:
        try:
            return await workflow.execute_activity_method(
                PolicyActivities.render_server,
                RenderRequest(ref.namespace, ref.name, "reconcile"),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RENDER_RETRY,
            )
        except ActivityError as exc:
            return RenderOutcome(ref.namespace, ref.name, error=str(exc.cause or exc))
