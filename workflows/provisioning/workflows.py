"""ProvisionTeam: a saga that leaves either a fully provisioned team or nothing it created."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from mcp_sentinel.kube.objects import Ref
    from workflows.provisioning.activities import ApplyObject, EnsureTeam, Membership, ProvisioningActivities
    from workflows.provisioning.manifests import TeamShape, slug_problem, team_namespace, team_objects

TASK_QUEUE = "sentinel-provisioning"

# Forward steps: transient failures (API server or Postgres restarting) retry a few times,
# validation failures never do.
STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
    non_retryable_error_types=["Invalid", "TeamConflict", "UnknownUser"],
)
# Undo steps must not give up quickly: a half-undone team is exactly what the saga prevents.
UNDO_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30)
)
STEP_TIMEOUT = timedelta(seconds=30)
UNDO_DEADLINE = timedelta(minutes=10)


@dataclass
class ProvisionTeamInput:
    """Who asks for which team (`created_by` may be empty); `shape` carries quota and network settings."""

    slug: str
    name: str
    created_by: str
    shape: TeamShape = field(default_factory=TeamShape)


@dataclass
class ProvisionTeamResult:
    """The provisioned team and what this run created (steps that already existed are listed as reused)."""

    team_id: str
    slug: str
    name: str
    namespace: str
    created: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def provision_workflow_id(slug: str) -> str:
    """One provisioning per slug at a time."""
    return f"provision-team-{slug}"


@workflow.defn(name="ProvisionTeam")
class ProvisionTeam:
    """Team record → namespace → quota, limits, network policies, role binding → owner membership."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    @workflow.run
    async def run(self, req: ProvisionTeamInput) -> ProvisionTeamResult:
        """Run the steps; on failure undo this run's steps in reverse and fail with the cause."""
        problem = slug_problem(req.slug)
        if problem:
            raise ApplicationError(problem, type="InvalidTeam", non_retryable=True)
        result = ProvisionTeamResult(team_id="", slug=req.slug, name=req.name, namespace=team_namespace(req.slug))
        step = "team record"
        try:
            team = await workflow.execute_activity_method(
                ProvisioningActivities.ensure_team,
                EnsureTeam(req.slug, req.name, req.created_by, result.namespace),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=STEP_RETRY,
            )
            result.team_id = team.id
            self._record(result, step, team.created, self._undo_team(team.id))
            for manifest in team_objects(req.slug, team.id, req.created_by, req.shape):
                ref = Ref.of(manifest)
                step = str(ref)
                created = await workflow.execute_activity_method(
                    ProvisioningActivities.apply_object,
                    ApplyObject(manifest),
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=STEP_RETRY,
                )
                self._record(result, step, created, self._undo_object(ref))
            if req.created_by:  # empty when the API already wrote the team row and its owner
                step = "owner membership"
                member = Membership(team.id, req.created_by, "owner")
                added = await workflow.execute_activity_method(
                    ProvisioningActivities.ensure_membership,
                    member,
                    start_to_close_timeout=STEP_TIMEOUT,
                    retry_policy=STEP_RETRY,
                )
                self._record(result, step, added, self._undo_member(member))
        except ActivityError as exc:
            undone = await self._compensate()
            cause = exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc.cause or exc)
            raise ApplicationError(
                f"provisioning team {req.slug!r} failed at {step}: {cause}; "
                f"rolled back: {', '.join(undone) or 'nothing'}",
                {"failed_step": step, "rolled_back": undone},
                type="ProvisioningFailed",
                non_retryable=True,
            ) from exc
        return result

    def _record(
        self, result: ProvisionTeamResult, step: str, created: bool, undo: Callable[[], Awaitable[Any]]
    ) -> None:
        # Only undo what this run created: a reused object may belong to an earlier, complete run.
        if created:
            result.created.append(step)
            self._undo.append((step, undo))
        else:
            result.reused.append(step)

    async def _compensate(self) -> list[str]:
        undone = []
        for step, undo in reversed(self._undo):
            await undo()
            undone.append(step)
        return undone

    @staticmethod
    def _undo_team(team_id: str) -> Callable[[], Awaitable[Any]]:
        return lambda: workflow.execute_activity_method(
            ProvisioningActivities.delete_team,
            team_id,
            start_to_close_timeout=STEP_TIMEOUT,
            schedule_to_close_timeout=UNDO_DEADLINE,
            retry_policy=UNDO_RETRY,
        )

    @staticmethod
    def _undo_object(ref: Ref) -> Callable[[], Awaitable[Any]]:
        return lambda: workflow.execute_activity_method(
            ProvisioningActivities.delete_object,
            ref,
            start_to_close_timeout=STEP_TIMEOUT,
            schedule_to_close_timeout=UNDO_DEADLINE,
            retry_policy=UNDO_RETRY,
        )

    @staticmethod
    def _undo_member(member: Membership) -> Callable[[], Awaitable[Any]]:
        return lambda: workflow.execute_activity_method(
            ProvisioningActivities.remove_membership,
            member,
            start_to_close_timeout=STEP_TIMEOUT,
            schedule_to_close_timeout=UNDO_DEADLINE,
            retry_policy=UNDO_RETRY,
        )


@dataclass
class DeprovisionTeamInput:
    """The team whose namespace objects go away (the identity store rows are the caller's)."""

    slug: str
    shape: TeamShape = field(default_factory=TeamShape)


def deprovision_workflow_id(slug: str) -> str:
    """One deprovisioning per slug at a time."""
    return f"deprovision-team-{slug}"


@workflow.defn(name="DeprovisionTeam")
class DeprovisionTeam:
    """Delete a team namespace's objects, then the namespace (idempotent; used when a team is deleted)."""

    @workflow.run
    async def run(self, req: DeprovisionTeamInput) -> list[str]:
        """The objects that were deleted (already-absent ones are skipped)."""
        problem = slug_problem(req.slug)
        if problem:
            raise ApplicationError(problem, type="InvalidTeam", non_retryable=True)
        deleted = []
        for manifest in reversed(team_objects(req.slug, "", "", req.shape)):
            ref = Ref.of(manifest)
            gone = await workflow.execute_activity_method(
                ProvisioningActivities.delete_object,
                ref,
                start_to_close_timeout=STEP_TIMEOUT,
                schedule_to_close_timeout=UNDO_DEADLINE,
                retry_policy=UNDO_RETRY,
            )
            if gone:
                deleted.append(str(ref))
        return deleted
