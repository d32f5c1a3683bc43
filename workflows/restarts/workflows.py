"""RestartComponent: restart one or all components and report each one's outcome."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.restarts.activities import ComponentOutcome, RestartActivities, Trigger, WaitReady

TASK_QUEUE = "sentinel-restarts"

TRIGGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=["UnknownComponent"],
)
# The wait itself ends at the deadline; retries only cover a lost worker or a flaky API read.
WAIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=5))
WAIT_HEARTBEAT = timedelta(seconds=5)


@dataclass
class RestartInput:
    """Components to restart (or `all`), and how long each may take to become ready."""

    components: list[str] = field(default_factory=list)
    all: bool = False
    deadline_seconds: float = 300.0
    poll_seconds: float = 2.0


@dataclass
class RestartResult:
    """Per-component outcomes; `ok` only when every component came back ready."""

    outcomes: list[ComponentOutcome] = field(default_factory=list)
    ok: bool = False


@workflow.defn(name="RestartComponent")
class RestartComponent:
    """Trigger each restart, then wait for readiness with a deadline, all components in parallel."""

    @workflow.run
    async def run(self, req: RestartInput) -> RestartResult:
        """Restart and report; a failed component never hides the others' outcomes."""
        known = await workflow.execute_activity_method(
            RestartActivities.list_components, start_to_close_timeout=timedelta(seconds=30), retry_policy=TRIGGER_RETRY
        )
        names = list(known) if req.all else list(dict.fromkeys(req.components))
        if not names:
            raise ApplicationError("component required", type="InvalidRequest", non_retryable=True)
        unknown = [n for n in names if n not in known]
        if unknown:
            # Bad input restarts nothing (the API answers 400 `unknown component`).
            raise ApplicationError(
                f"unknown component: {', '.join(unknown)}",
                {"unknown": unknown},
                type="UnknownComponent",
                non_retryable=True,
            )
        now = workflow.now()
        token = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        deadline = (now + timedelta(seconds=req.deadline_seconds)).isoformat()
        outcomes = await asyncio.gather(*(self._one(n, token, deadline, req) for n in names))
        return RestartResult(list(outcomes), all(o.ok for o in outcomes))

    async def _one(self, name: str, token: str, deadline: str, req: RestartInput) -> ComponentOutcome:
        try:
            await workflow.execute_activity_method(
                RestartActivities.trigger,
                Trigger(name, token),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=TRIGGER_RETRY,
            )
            return await workflow.execute_activity_method(
                RestartActivities.wait_ready,
                WaitReady(name, token, deadline, req.poll_seconds),
                start_to_close_timeout=timedelta(seconds=req.deadline_seconds + 30),
                heartbeat_timeout=WAIT_HEARTBEAT,
                retry_policy=WAIT_RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc.cause or exc)
            return ComponentOutcome(name, False, cause)
