"""Temporal client helpers for the API (and operators): connect, start, signal, schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from mcp_sentinel.env import text
from workflows.approvals.workflows import TASK_QUEUE as APPROVALS_QUEUE
from workflows.lifecycle.activities import ServerKey
from workflows.lifecycle.workflows import SCHEDULE_ID as SERVER_SCHEDULE_ID
from workflows.lifecycle.workflows import SIGNAL as LIFECYCLE_SIGNAL
from workflows.lifecycle.workflows import TASK_QUEUE as LIFECYCLE_QUEUE
from workflows.lifecycle.workflows import LifecycleResult, ServerLifecycle, lifecycle_workflow_id
from workflows.provisioning.manifests import TeamShape, slug_problem
from workflows.provisioning.workflows import TASK_QUEUE as PROVISIONING_QUEUE
from workflows.provisioning.workflows import (
    DeprovisionTeam,
    DeprovisionTeamInput,
    ProvisionTeam,
    ProvisionTeamInput,
    ProvisionTeamResult,
    deprovision_workflow_id,
    provision_workflow_id,
)
from workflows.reconcile.workflows import SCHEDULE_ID
from workflows.reconcile.workflows import TASK_QUEUE as RECONCILE_QUEUE
from workflows.restarts.workflows import TASK_QUEUE as RESTARTS_QUEUE
from workflows.restarts.workflows import RestartComponent, RestartInput, RestartResult
from workflows.sessions.workflows import TASK_QUEUE as SESSIONS_QUEUE
from workflows.sessions.workflows import SessionExpiry, SessionExpiryInput, SessionExpiryResult, session_workflow_id

# The reconcile queue stays last: the worker puts the reconcile schedule on `queues[-1]`.
TASK_QUEUES = (PROVISIONING_QUEUE, RESTARTS_QUEUE, SESSIONS_QUEUE, LIFECYCLE_QUEUE, APPROVALS_QUEUE, RECONCILE_QUEUE)


@dataclass(frozen=True)
class TemporalSettings:
    """Where Temporal is (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`)."""

    address: str = "127.0.0.1:17233"
    namespace: str = "default"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TemporalSettings:
        """Read the settings from an environment mapping."""
        return cls(
            address=text(environ, "TEMPORAL_ADDRESS", cls.address),
            namespace=text(environ, "TEMPORAL_NAMESPACE", cls.namespace),
        )


class WorkflowTimeout(TimeoutError):
    """The workflow did not finish in time; it keeps running and can be inspected by `workflow_id`."""

    def __init__(self, what: str, workflow_id: str, seconds: float) -> None:
        super().__init__(f"{what} did not finish within {seconds:g}s; workflow id {workflow_id} is still running")
        self.workflow_id = workflow_id


class WorkflowFailed(RuntimeError):
    """The workflow failed with a business error (`kind` is the ApplicationError type, e.g. `InvalidTeam`)."""

    def __init__(self, message: str, workflow_id: str, kind: str) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.kind = kind


async def connect(environ: Mapping[str, str]) -> Client:
    """A client for `TEMPORAL_ADDRESS` / `TEMPORAL_NAMESPACE`."""
    settings = TemporalSettings.from_env(environ)
    return await Client.connect(settings.address, namespace=settings.namespace)


def _failure(exc: WorkflowFailureError, workflow_id: str) -> WorkflowFailed:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return WorkflowFailed(cause.message, workflow_id, cause.type or "ApplicationError")
    return WorkflowFailed(str(cause or exc), workflow_id, type(cause).__name__)


async def start_provision_team(
    client: Client,
    slug: str,
    name: str,
    created_by: str,
    *,
    wait_seconds: float = 30.0,
    task_queue: str = PROVISIONING_QUEUE,
    shape: TeamShape | None = None,
) -> ProvisionTeamResult:
    """Provision a team and wait for it (`POST /api/runtime/teams`).

    Raises ValueError for an invalid slug (nothing started), WorkflowFailed when provisioning
    failed and was rolled back, WorkflowTimeout when it is still running after `wait_seconds`.
    """
    problem = slug_problem(slug)
    if problem:
        raise ValueError(problem)
    wid = provision_workflow_id(slug)
    handle = await client.start_workflow(
        ProvisionTeam.run,
        ProvisionTeamInput(slug, name, created_by, shape or TeamShape()),
        id=wid,
        task_queue=task_queue,
        # A concurrent request for the same slug joins the running provisioning.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    try:
        return await asyncio.wait_for(handle.result(), wait_seconds)
    except TimeoutError:
        raise WorkflowTimeout(f"provisioning team {slug!r}", wid, wait_seconds) from None
    except WorkflowFailureError as exc:
        raise _failure(exc, wid) from exc


class TemporalTeamProvisioner:
    """The API's `TeamProvisioner` backed by the ProvisionTeam / DeprovisionTeam workflows.

    The API writes the team row (and owner) first; the workflow finds it (create-or-get),
    provisions the namespace and, on failure, rolls back only what it created, then raises so
    the API deletes the row. `client` may be a Client or an async factory (lazy connect).
    """

    def __init__(
        self,
        client: Client | Callable[[], Awaitable[Client]],
        *,
        wait_seconds: float = 30.0,
        task_queue: str = PROVISIONING_QUEUE,
    ) -> None:
        self._client = client
        self.wait_seconds = wait_seconds
        self.task_queue = task_queue

    async def _get(self) -> Client:
        return self._client if isinstance(self._client, Client) else await self._client()

    async def provision(self, team: TeamLike) -> None:
        """Provision the team's namespace (WorkflowFailed / WorkflowTimeout on failure)."""
        await start_provision_team(
            await self._get(), team.slug, team.name, "", wait_seconds=self.wait_seconds, task_queue=self.task_queue
        )

    async def deprovision(self, team: TeamLike) -> None:
        """Delete the team's namespace objects."""
        client = await self._get()
        wid = deprovision_workflow_id(team.slug)
        handle = await client.start_workflow(
            DeprovisionTeam.run,
            DeprovisionTeamInput(team.slug),
            id=wid,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        try:
            await asyncio.wait_for(handle.result(), self.wait_seconds)
        except TimeoutError:
            raise WorkflowTimeout(f"deprovisioning team {team.slug!r}", wid, self.wait_seconds) from None
        except WorkflowFailureError as exc:
            raise _failure(exc, wid) from exc


class TeamLike(Protocol):
    """What the provisioner reads from the identity store's `Team`."""

    @property
    def slug(self) -> str:
        """The team slug."""

    @property
    def name(self) -> str:
        """The display name."""


async def restart_components(
    client: Client,
    components: list[str] | None = None,
    *,
    all_components: bool = False,
    deadline_seconds: float = 300.0,
    wait_seconds: float | None = None,
    task_queue: str = RESTARTS_QUEUE,
    workflow_id: str | None = None,
) -> RestartResult:
    """Restart components (or all) and wait for the per-component report (`POST /runtime/actions/restart`)."""
    if not all_components and not components:
        raise ValueError("component required")
    import uuid

    wid = workflow_id or f"restart-{uuid.uuid4()}"
    handle = await client.start_workflow(
        RestartComponent.run,
        RestartInput(list(components or []), all_components, deadline_seconds),
        id=wid,
        task_queue=task_queue,
    )
    wait = wait_seconds if wait_seconds is not None else deadline_seconds + 60
    try:
        return await asyncio.wait_for(handle.result(), wait)
    except TimeoutError:
        raise WorkflowTimeout("restart", wid, wait) from None
    except WorkflowFailureError as exc:
        raise _failure(exc, wid) from exc


async def schedule_session_expiry(
    client: Client,
    namespace: str,
    name: str,
    expires_at: str,
    *,
    server: str = "",
    server_namespace: str = "",
    task_queue: str = SESSIONS_QUEUE,
) -> WorkflowHandle[SessionExpiry, SessionExpiryResult]:
    """Start the session's timer, or move it if one runs (signal-with-start); `.id` is the workflow id."""
    wid = session_workflow_id(namespace, name)
    return await client.start_workflow(
        SessionExpiry.run,
        SessionExpiryInput(namespace, name, expires_at, server, server_namespace),
        id=wid,
        task_queue=task_queue,
        start_signal="extend",
        start_signal_args=[expires_at],
    )


async def _signal(client: Client, namespace: str, name: str, signal: str) -> bool:
    try:
        await client.get_workflow_handle(session_workflow_id(namespace, name)).signal(signal)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False  # no timer running (no expiry, or it already fired): nothing to tell
        raise
    return True


async def revoke_session(client: Client, namespace: str, name: str) -> bool:
    """Tell the session's timer it was revoked; False when no timer runs."""
    return await _signal(client, namespace, name, "revoke")


async def delete_session(client: Client, namespace: str, name: str) -> bool:
    """Tell the session's timer it was deleted; False when no timer runs."""
    return await _signal(client, namespace, name, "delete")


async def ensure_reconcile_schedule(
    client: Client, every: timedelta, *, task_queue: str = RECONCILE_QUEUE, schedule_id: str = SCHEDULE_ID
) -> str:
    """Create the policy reconcile Schedule, or update its interval and queue when it exists."""
    return await _ensure_schedule(client, "PolicyReconcile", every, task_queue=task_queue, schedule_id=schedule_id)


async def ensure_server_reconcile_schedule(
    client: Client, every: timedelta, *, task_queue: str = LIFECYCLE_QUEUE, schedule_id: str = SERVER_SCHEDULE_ID
) -> str:
    """Create the server reconcile Schedule (drift repair of every MCPServer), or update it."""
    return await _ensure_schedule(client, "ServerReconcile", every, task_queue=task_queue, schedule_id=schedule_id)


async def _ensure_schedule(
    client: Client, workflow_name: str, every: timedelta, *, task_queue: str, schedule_id: str
) -> str:
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(workflow_name, id=f"{schedule_id}-run", task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def update(_input: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id).update(update)
    return schedule_id


async def request_server_reconcile(
    client: Client, namespace: str, name: str, *, task_queue: str = LIFECYCLE_QUEUE
) -> WorkflowHandle[ServerLifecycle, LifecycleResult]:
    """Signal-with-start the server's ServerLifecycle: a running one goes round once more, else one starts.

    Returns the run's handle. Used on create, update and delete alike (each pass reads the server).
    """
    return await client.start_workflow(
        ServerLifecycle.run,
        ServerKey(namespace, name),
        task_queue=task_queue,
        start_signal=LIFECYCLE_SIGNAL,
        id=lifecycle_workflow_id(namespace, name),
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
