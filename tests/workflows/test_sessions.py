"""SessionExpiry under time skipping (days in milliseconds), on the real local Kubernetes API server.

The policy is rendered by the real renderer and judged by the real evaluator.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from mcp_sentinel.kube.objects import KubeCluster, Ref
from mcp_sentinel.policy import AuthzRequest, Identity, load_policy
from tests.helpers.workflows import grant, mcp_server, session
from workflows.client import delete_session, revoke_session, schedule_session_expiry
from workflows.sessions.workflows import SessionExpiry, parse_time, session_workflow_id
from workflows.worker import WORKFLOWS, WorkerSettings, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")


def rfc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest_asyncio.fixture(loop_scope="session")
async def ts_worker(
    time_skipping_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, tmp_path: Path
) -> AsyncIterator[Client]:
    settings = WorkerSettings(policy_output_dir=str(tmp_path / "policies"))
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(time_skipping_env.client, task_queue, build_activities(settings, cluster=cluster), ex):
            yield time_skipping_env.client


def setup_server(cluster: KubeCluster, ns: str, expires_at: str, **spec: object) -> str:
    cluster.create(mcp_server(ns, "notes"))
    cluster.create(grant(ns, "notes-u1", "notes", "u1"))
    name = f"sess-{uuid.uuid4().hex[:6]}"
    cluster.create(session(ns, name, "notes", "u1", expires_at, **spec))
    return name


def decide(policy_path: Path, session_id: str, at: datetime) -> str:
    policy = load_policy(policy_path.read_bytes())
    req = AuthzRequest(Identity(human_id="u1", session_id=session_id), "tools/call", "echo")
    return policy.authorize(req, at.timestamp()).reason


async def test_expiry_marks_the_session_and_rerenders_the_policy(
    time_skipping_env: WorkflowEnvironment,
    ts_worker: Client,
    task_queue: str,
    cluster: KubeCluster,
    namespace: str,
    tmp_path: Path,
) -> None:
    expires = (await time_skipping_env.get_current_time()).replace(microsecond=0) + timedelta(days=3)
    name = setup_server(cluster, namespace, rfc(expires))
    handle = await schedule_session_expiry(ts_worker, namespace, name, rfc(expires), task_queue=task_queue)
    wid = handle.id
    assert wid == session_workflow_id(namespace, name)
    result = await handle.result()

    assert result.outcome == "expired" and parse_time(result.expires_at) == expires
    assert result.policy_changed and not result.policy_error
    cr = cluster.get(Ref("mcpruntime.org/v1alpha1", "MCPAgentSession", namespace, name))
    assert cr is not None and cr["status"]["phase"] == "Expired"
    assert cr["status"]["conditions"][0]["type"] == "Expired" and cr["status"]["conditions"][0]["status"] == "True"
    policy_file = tmp_path / "policies" / namespace / "notes.json"
    cm = cluster.get(Ref("v1", "ConfigMap", namespace, "notes-gateway-policy"))
    assert cm is not None and cm["data"]["policy.json"] == policy_file.read_text()
    # The delivered policy lets the session work before its expiry and denies it after.
    assert decide(policy_file, name, expires - timedelta(hours=1)) == "allowed"
    assert decide(policy_file, name, expires + timedelta(seconds=1)) == "session_expired"

    # Determinism: the recorded history replays against today's workflow code.
    history = await handle.fetch_history()
    await Replayer(workflows=list(WORKFLOWS)).replay_workflow(history)


async def test_extend_moves_the_deadline(
    time_skipping_env: WorkflowEnvironment, ts_worker: Client, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    now = (await time_skipping_env.get_current_time()).replace(microsecond=0)
    first, later = now + timedelta(days=1), now + timedelta(days=5)
    name = setup_server(cluster, namespace, rfc(first))
    started = await schedule_session_expiry(ts_worker, namespace, name, rfc(first), task_queue=task_queue)
    # The API extends the session: same helper, signal-with-start moves the running timer.
    handle = await schedule_session_expiry(ts_worker, namespace, name, rfc(later), task_queue=task_queue)
    assert handle.id == started.id
    assert parse_time(await handle.query(SessionExpiry.expires_at)) == later
    await time_skipping_env.sleep(timedelta(days=2))
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    cr = cluster.get(Ref("mcpruntime.org/v1alpha1", "MCPAgentSession", namespace, name))
    assert cr is not None and "status" not in cr  # not marked at the old deadline
    result = await handle.result()
    assert result.outcome == "expired" and parse_time(result.expires_at) == later


async def test_out_of_band_extension_in_the_cr_is_honoured(
    time_skipping_env: WorkflowEnvironment, ts_worker: Client, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    now = (await time_skipping_env.get_current_time()).replace(microsecond=0)
    first, edited = now + timedelta(days=1), now + timedelta(days=4)
    name = setup_server(cluster, namespace, rfc(first))
    handle = await schedule_session_expiry(ts_worker, namespace, name, rfc(first), task_queue=task_queue)
    # `kubectl edit` pushes expiresAt out without telling the workflow.
    ref = Ref("mcpruntime.org/v1alpha1", "MCPAgentSession", namespace, name)
    cluster.merge_patch(ref, {"spec": {"expiresAt": rfc(edited)}})
    result = await handle.result()
    assert result.outcome == "expired" and parse_time(result.expires_at) == edited


async def test_revoke_signal_revokes_now_and_rerenders(
    time_skipping_env: WorkflowEnvironment,
    ts_worker: Client,
    task_queue: str,
    cluster: KubeCluster,
    namespace: str,
    tmp_path: Path,
) -> None:
    expires = (await time_skipping_env.get_current_time()).replace(microsecond=0) + timedelta(days=30)
    name = setup_server(cluster, namespace, rfc(expires))
    handle = await schedule_session_expiry(ts_worker, namespace, name, rfc(expires), task_queue=task_queue)
    assert await revoke_session(ts_worker, namespace, name) is True
    result = await handle.result()
    assert result.outcome == "revoked" and result.policy_changed
    cr = cluster.get(Ref("mcpruntime.org/v1alpha1", "MCPAgentSession", namespace, name))
    assert cr is not None and cr["spec"]["revoked"] is True and cr["status"]["phase"] == "Revoked"
    policy_file = tmp_path / "policies" / namespace / "notes.json"
    assert decide(policy_file, name, expires - timedelta(days=1)) == "session_revoked"
    # The timer is gone: later signals find nothing to tell.
    assert await revoke_session(ts_worker, namespace, name) is False


async def test_delete_signal_stops_the_timer_and_renders_without_the_session(
    time_skipping_env: WorkflowEnvironment,
    ts_worker: Client,
    task_queue: str,
    cluster: KubeCluster,
    namespace: str,
    tmp_path: Path,
) -> None:
    expires = (await time_skipping_env.get_current_time()).replace(microsecond=0) + timedelta(days=30)
    name = setup_server(cluster, namespace, rfc(expires))
    handle = await schedule_session_expiry(
        ts_worker, namespace, name, rfc(expires), server="notes", server_namespace=namespace, task_queue=task_queue
    )
    cluster.delete(Ref("mcpruntime.org/v1alpha1", "MCPAgentSession", namespace, name))
    assert await delete_session(ts_worker, namespace, name) is True
    result = await handle.result()
    assert result.outcome == "deleted" and not result.policy_error
    policy_file = tmp_path / "policies" / namespace / "notes.json"
    assert decide(policy_file, name, expires - timedelta(days=1)) == "session_not_found"


async def test_expiry_of_a_session_deleted_without_a_signal(
    time_skipping_env: WorkflowEnvironment, ts_worker: Client, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    expires = (await time_skipping_env.get_current_time()).replace(microsecond=0) + timedelta(hours=2)
    name = setup_server(cluster, namespace, rfc(expires))
    handle = await schedule_session_expiry(ts_worker, namespace, name, rfc(expires), task_queue=task_queue)
    cluster.delete(Ref("mcpruntime.org/v1alpha1", "MCPAgentSession", namespace, name))
    result = await handle.result()
    assert result.outcome == "deleted"


async def test_signals_to_an_unknown_session_report_no_timer(ts_worker: Client) -> None:
    assert await revoke_session(ts_worker, "nowhere", "nothing") is False
    assert await delete_session(ts_worker, "nowhere", "nothing") is False
