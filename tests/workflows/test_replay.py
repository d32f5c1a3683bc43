"""Determinism: histories recorded from real runs replay against the current workflow code."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from mcp_sentinel.kube.objects import KubeCluster
from tests.helpers.workflows import FailingAt
from workflows.provisioning.activities import Membership, ProvisioningActivities
from workflows.provisioning.workflows import ProvisionTeam, ProvisionTeamInput
from workflows.restarts.activities import KubernetesRestarts
from workflows.restarts.workflows import RestartComponent, RestartInput
from workflows.worker import WORKFLOWS, WorkerSettings, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")


class _NoTeams:
    """A store whose every team already exists (so the saga reaches the cluster steps)."""

    async def ensure_team(self, slug: str, name: str, created_by: str, namespace: str) -> tuple[object, bool]:
        from workflows.provisioning.activities import TeamRecord

        return TeamRecord(f"id-{slug}", slug, name, namespace), True

    async def delete_team(self, team_id: str) -> bool:
        return True

    async def ensure_membership(self, team_id: str, user_id: str, role: str) -> bool:
        return True

    async def remove_membership(self, team_id: str, user_id: str) -> bool:
        return True


@workflow.defn(name="ProvisionTeam")
class ReorderedProvisionTeam:
    """A 'new version' that adds the owner before the team record: incompatible with old histories."""

    @workflow.run
    async def run(self, req: ProvisionTeamInput) -> None:
        await workflow.execute_activity_method(
            ProvisioningActivities.ensure_membership,
            Membership("x", req.created_by),
            start_to_close_timeout=timedelta(seconds=5),
        )


async def recorded_histories(
    env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, ns: str
) -> list[WorkflowHistory]:
    teams = _NoTeams()
    failing = FailingAt(teams, cluster)  # type: ignore[arg-type]
    acts = [
        a
        for a in build_activities(
            WorkerSettings(), cluster=cluster, teams=teams, restart_backend=KubernetesRestarts(cluster, ns)
        )
        if a.__name__ != "apply_object"
    ]  # type: ignore[arg-type]
    handles = []
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(env.client, task_queue, [*acts, failing.apply_object], ex):
            slug = f"replay-{uuid.uuid4().hex[:6]}"
            h = await env.client.start_workflow(
                ProvisionTeam.run, ProvisionTeamInput(slug, "Replay", "u1"), id=f"p-{slug}", task_queue=task_queue
            )
            with pytest.raises(WorkflowFailureError):
                await h.result()
            handles.append(h)
            r = await env.client.start_workflow(
                RestartComponent.run,
                RestartInput(["missing"], deadline_seconds=1),
                id=f"r-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            with pytest.raises(WorkflowFailureError):
                await r.result()  # unknown component: fails before restarting anything
            handles.append(r)
    return [await h.fetch_history() for h in handles]


async def test_recorded_histories_replay_and_an_incompatible_change_is_caught(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    histories = await recorded_histories(temporal_env, task_queue, cluster, namespace)
    # The failing provisioning ran forward steps then its compensations: a rich history.
    assert sum(1 for e in histories[0].events if e.HasField("activity_task_scheduled_event_attributes")) >= 6

    async def feed():  # type: ignore[no-untyped-def]
        for h in histories:
            yield h

    results = await Replayer(workflows=list(WORKFLOWS)).replay_workflows(feed(), raise_on_replay_failure=False)
    assert all(f is None for f in results.replay_failures.values()), results.replay_failures

    broken = await Replayer(workflows=[ReorderedProvisionTeam]).replay_workflow(
        histories[0], raise_on_replay_failure=False
    )
    assert broken.replay_failure is not None
