"""PolicyReconcile and its Schedule on real Temporal and the real local Kubernetes API server."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from mcp_sentinel.kube.objects import KubeCluster, Ref
from tests.helpers.workflows import grant, mcp_server
from workflows.client import ensure_reconcile_schedule
from workflows.reconcile.workflows import PolicyReconcile, ReconcileResult
from workflows.worker import WORKFLOWS, WorkerSettings, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def worker(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, tmp_path: Path
) -> AsyncIterator[Client]:
    settings = WorkerSettings(policy_output_dir=str(tmp_path / "policies"))
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, build_activities(settings, cluster=cluster), ex):
            yield temporal_env.client


async def reconcile(client: Client, task_queue: str) -> ReconcileResult:
    return await client.execute_workflow(PolicyReconcile.run, id=f"reconcile-{uuid.uuid4()}", task_queue=task_queue)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def mine(keys: list[str], ns: str) -> list[str]:
    # The API server is shared by the session's tests: look only at this test's namespace.
    return sorted(k for k in keys if k.startswith(f"{ns}/"))


async def test_reconcile_renders_repairs_drift_and_is_quiet_otherwise(
    worker: Client, task_queue: str, cluster: KubeCluster, namespace: str, tmp_path: Path, temporal_metrics_url: str
) -> None:
    cluster.create(mcp_server(namespace, "alpha"))
    cluster.create(mcp_server(namespace, "beta"))
    first = await reconcile(worker, task_queue)
    assert mine(first.drifted, namespace) == [f"{namespace}/alpha", f"{namespace}/beta"]
    assert (tmp_path / "policies" / namespace / "alpha.json").exists()

    quiet = await reconcile(worker, task_queue)
    assert mine(quiet.drifted, namespace) == [] and not mine(quiet.failed, namespace)

    # A grant added with kubectl (no API call, so no render) is caught by the next pass.
    cluster.create(grant(namespace, "alpha-u1", "alpha", "u1"))
    edited = await reconcile(worker, task_queue)
    assert mine(edited.drifted, namespace) == [f"{namespace}/alpha"]
    assert "alpha-u1" in (tmp_path / "policies" / namespace / "alpha.json").read_text()

    # Someone edits the delivered ConfigMap by hand: the reconcile puts the rendered text back.
    cm_ref = Ref("v1", "ConfigMap", namespace, "beta-gateway-policy")
    good = cluster.get(cm_ref)
    assert good is not None
    cluster.merge_patch(cm_ref, {"data": {"policy.json": "{}"}})
    repaired = await reconcile(worker, task_queue)
    assert mine(repaired.drifted, namespace) == [f"{namespace}/beta"]
    after = cluster.get(cm_ref)
    assert after is not None
    # Same content (revision); a rewritten payload carries a fresh generated_at (§2.6).
    assert json.loads(after["data"]["policy.json"])["revision"] == json.loads(good["data"]["policy.json"])["revision"]

    metrics = await asyncio.to_thread(scrape, temporal_metrics_url)
    assert "sentinel_policy_drift{" in metrics and 'server="beta"' in metrics


async def test_invalid_render_keeps_the_last_good_policy(
    worker: Client, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    cluster.create(mcp_server(namespace, "gamma"))
    await reconcile(worker, task_queue)
    cm_ref = Ref("v1", "ConfigMap", namespace, "gamma-gateway-policy")
    good = cluster.get(cm_ref)
    assert good is not None
    # OAuth without an issuer passes the CRD schema but fails policy validation (§2.7 step 6):
    # the render is refused and the old policy stays.
    ref = Ref("mcpruntime.org/v1alpha1", "MCPServer", namespace, "gamma")
    cluster.merge_patch(ref, {"spec": {"auth": {"mode": "oauth"}}})
    result = await reconcile(worker, task_queue)
    failed = mine(result.failed, namespace)
    assert len(failed) == 1 and failed[0].startswith(f"{namespace}/gamma: invalid policy render")
    after = cluster.get(cm_ref)
    assert after is not None and after["data"] == good["data"]


async def test_schedule_runs_reconcile_and_is_idempotent(
    worker: Client, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    cluster.create(mcp_server(namespace, "delta"))
    sid = f"policy-reconcile-{uuid.uuid4().hex[:6]}"
    assert await ensure_reconcile_schedule(worker, timedelta(hours=1), task_queue=task_queue, schedule_id=sid) == sid
    # Calling again (every worker start does) updates instead of failing.
    await ensure_reconcile_schedule(worker, timedelta(minutes=30), task_queue=task_queue, schedule_id=sid)
    handle = worker.get_schedule_handle(sid)
    desc = await handle.describe()
    assert desc.schedule.spec.intervals[0].every == timedelta(minutes=30)
    await handle.trigger()
    try:
        for _ in range(200):
            desc = await handle.describe()
            if desc.info.recent_actions:
                break
            await asyncio.sleep(0.1)
        action = desc.info.recent_actions[0].action
        run = worker.get_workflow_handle_for(
            PolicyReconcile.run, action.workflow_id, first_execution_run_id=action.first_execution_run_id
        )
        result = await run.result()
        assert f"{namespace}/delta" in result.drifted
        # Determinism: the recorded history replays against today's workflow code.
        await Replayer(workflows=list(WORKFLOWS)).replay_workflow(await run.fetch_history())
    finally:
        await handle.delete()
