"""ServerLifecycle determinism: committed histories (a rollout and a rolled-back rollout) replay on today's code.

Regenerate the fixture after an intentional, versioned workflow change with
`RECORD_LIFECYCLE_HISTORY=1 python -m pytest tests/workflows/test_lifecycle_replay.py`.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from localstack.kube_apiserver.admission import ROLLOUT_ANNOTATION
from mcp_sentinel.kube.objects import KubeCluster, Ref
from tests.helpers.lifecycle import SERVER, image_server, settings
from workflows.client import request_server_reconcile
from workflows.lifecycle.activities import Rollout, ServerKey
from workflows.lifecycle.workflows import LifecycleResult, ServerLifecycle
from workflows.worker import WORKFLOWS, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIXTURE = Path(__file__).parent / "histories" / "server_lifecycle.json"


def committed() -> list[WorkflowHistory]:
    raw = json.loads(FIXTURE.read_text())
    return [WorkflowHistory.from_json(h["workflow_id"], h["history"]) for h in raw["histories"]]


async def test_committed_lifecycle_histories_replay() -> None:
    histories = committed()
    assert len(histories) == 2
    kinds = [{e.WhichOneof("attributes") for e in h.events} for h in histories]
    # The second run waited on a timer and rolled back: the fixture covers the compensation path.
    assert "timer_started_event_attributes" in kinds[1]
    for history in histories:
        await Replayer(workflows=list(WORKFLOWS)).replay_workflow(history)


@workflow.defn(name="ServerLifecycle")
class TrustsEveryRollout(ServerLifecycle):
    """A nondeterministic change: stops waiting for rollouts (and so never rolls back)."""

    @workflow.run
    async def run(self, key: ServerKey) -> LifecycleResult:
        return await super().run(key)

    async def _await_rollout(self, key: ServerKey, deadline_seconds: int) -> Rollout:
        return Rollout("ready", "assumed")


async def test_replay_catches_a_nondeterministic_change() -> None:
    with pytest.raises(workflow.NondeterminismError):
        await Replayer(workflows=[TrustsEveryRollout]).replay_workflow(committed()[1])


@pytest.mark.skipif(not os.environ.get("RECORD_LIFECYCLE_HISTORY"), reason="records the fixture on request only")
async def test_record_lifecycle_histories(
    time_skipping_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    client = time_skipping_env.client
    cluster.create(image_server(namespace, "rec"))
    histories = []
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(client, task_queue, build_activities(settings(), cluster=cluster), ex):
            first = await request_server_reconcile(client, namespace, "rec", task_queue=task_queue)
            assert (await first.result()).outcome == "ready"
            histories.append(await first.fetch_history())
            dep = Ref("apps/v1", "Deployment", namespace, "rec")
            cluster.merge_patch(dep, {"metadata": {"annotations": {ROLLOUT_ANNOTATION: "hold"}}})
            cluster.merge_patch(Ref(SERVER, "MCPServer", namespace, "rec"), {"spec": {"imageTag": "9-broken"}})
            second = await request_server_reconcile(client, namespace, "rec", task_queue=task_queue)
            assert (await second.result()).outcome == "rolled-back"
            histories.append(await second.fetch_history())
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(
        {"histories": [{"workflow_id": h.workflow_id, "history": json.loads(h.to_json())} for h in histories]},
        indent=1,
    ) + "\n")
