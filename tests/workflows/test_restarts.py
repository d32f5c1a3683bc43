"""RestartComponent: Kubernetes rollouts (real local API server) and local processes (real supervisor)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from localstack.config import Ports, StackConfig
from localstack.control import ControlDir, serve_pending
from localstack.restarts import LocalRestarts
from localstack.supervisor import PYTHON, Component, Supervisor
from mcp_sentinel.kube.objects import KubeCluster, Ref
from tests.helpers.workflows import worker_env
from workflows.client import WorkflowFailed, restart_components
from workflows.restarts.activities import RESTART_ANNOTATION, KubernetesRestarts
from workflows.restarts.workflows import RestartComponent, RestartInput
from workflows.worker import WorkerSettings, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")


# The local API server plays the Deployment controller: rollouts finish at once unless held.
HOLD = {"kube.mcp-sentinel.dev/rollout": "hold"}


def deployment(ns: str, name: str, held: bool = False) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"app.kubernetes.io/part-of": "mcp-sentinel"},
            "annotations": HOLD if held else {},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": "x"}]}},
        },
    }


async def test_kubernetes_rollouts_report_per_component_outcomes(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    cluster.create(deployment(namespace, "api"))
    cluster.create(deployment(namespace, "ingest", held=True))
    acts = build_activities(WorkerSettings(), cluster=cluster, restart_backend=KubernetesRestarts(cluster, namespace))
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            result = await temporal_env.client.execute_workflow(
                RestartComponent.run,
                RestartInput(["api", "ingest"], deadline_seconds=2, poll_seconds=0.1),
                id=f"restart-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    by_name = {o.component: o for o in result.outcomes}
    assert by_name["api"].ok, by_name["api"]
    # No controller rolls "ingest" out: the deadline turns it into a failed outcome.
    assert not by_name["ingest"].ok and "not ready by the deadline" in by_name["ingest"].detail
    assert result.ok is False
    for name in ("api", "ingest"):
        dep = cluster.get(Ref("apps/v1", "Deployment", namespace, name))
        assert dep is not None and RESTART_ANNOTATION in dep["spec"]["template"]["metadata"]["annotations"]


async def test_all_means_every_platform_deployment(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, namespace: str
) -> None:
    cluster.create(deployment(namespace, "ui"))
    other = deployment(namespace, "someone-elses")
    other["metadata"]["labels"] = {}  # type: ignore[index]
    cluster.create(other)
    acts = build_activities(WorkerSettings(), cluster=cluster, restart_backend=KubernetesRestarts(cluster, namespace))
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            result = await restart_components(
                temporal_env.client, all_components=True, deadline_seconds=10, task_queue=task_queue
            )
    assert [(o.component, o.ok) for o in result.outcomes] == [("ui", True)]
    assert result.ok


async def test_restart_requires_a_component(temporal_env: WorkflowEnvironment, task_queue: str) -> None:
    with pytest.raises(ValueError, match="component required"):
        await restart_components(temporal_env.client, [], task_queue=task_queue)
    acts = build_activities(
        WorkerSettings(), cluster=KubeCluster("/nonexistent"), restart_backend=LocalRestarts(Path("/nonexistent"))
    )
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            with pytest.raises(WorkflowFailed) as err:
                await restart_components(temporal_env.client, all_components=True, task_queue=task_queue)
    assert err.value.kind == "InvalidRequest" and "component required" in str(err.value)


# ---- local backend: a real supervisor restarting real processes ------------------------------


def http_component(name: str, port: int) -> Component:
    return Component(
        name=name,
        argv=[PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        health_port=port,
        startup_timeout=30,
    )


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[Supervisor]:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    with Supervisor(cfg) as sup:
        sup.start(http_component("web", cfg.ports.ui))
        sup.start(http_component("docs", cfg.ports.api))
        yield sup


@contextlib.contextmanager
def serving(sup: Supervisor) -> Iterator[None]:
    """The `sentinel up` loop's part: answer control requests while the test runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            serve_pending(sup)
            time.sleep(0.05)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


async def test_local_backend_restarts_supervised_processes(
    temporal_env: WorkflowEnvironment, task_queue: str, local_stack: Supervisor
) -> None:
    before = {n: r.process.pid for n, r in local_stack.running.items()}
    acts = build_activities(
        WorkerSettings(), cluster=KubeCluster("/nonexistent"), restart_backend=LocalRestarts(local_stack.run_dir)
    )
    with serving(local_stack), ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            result = await restart_components(
                temporal_env.client, all_components=True, deadline_seconds=30, task_queue=task_queue
            )
            pids = {n: r.process.pid for n, r in local_stack.running.items()}
            with pytest.raises(WorkflowFailed) as missing:
                await restart_components(
                    temporal_env.client, ["web", "ghost"], deadline_seconds=5, task_queue=task_queue
                )
    assert result.ok and sorted(o.component for o in result.outcomes) == ["docs", "web"]
    after = {n: r.process.pid for n, r in local_stack.running.items()}
    assert all(after[n] != before[n] for n in before)
    assert all(r.process.poll() is None for r in local_stack.running.values())
    # An unknown name fails the whole request before anything restarts.
    assert missing.value.kind == "UnknownComponent" and "ghost" in str(missing.value)
    assert {n: r.process.pid for n, r in local_stack.running.items()} == pids


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


async def _wait_for(pred: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _wait_until_waiting(handle: WorkflowHandle[RestartComponent, object]) -> None:
    """Until the readiness wait runs (heartbeating) on a worker."""
    for _ in range(300):
        desc = await handle.describe()
        for act in desc.raw_description.pending_activities:
            if act.activity_type.name == "restarts.wait_ready" and act.HasField("last_heartbeat_time"):
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the readiness wait never started")


def start_worker(tmp: Path, env: dict[str, str], tag: str) -> subprocess.Popen[bytes]:
    log = open(tmp / f"worker-{tag}.log", "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "localstack.worker"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def test_killed_worker_is_replaced_and_the_restart_completes_once(
    temporal_env: WorkflowEnvironment, local_stack: Supervisor, kubeconfig: str, tmp_path: Path
) -> None:
    prefix = f"kill-{uuid.uuid4().hex[:6]}-"
    ports = Ports.free()
    target = temporal_env.client.service_client.config.target_host
    env = worker_env(
        TEMPORAL_ADDRESS=target,
        KUBECONFIG=kubeconfig,
        RESTART_BACKEND="local",
        SENTINEL_RUN_DIR=str(local_stack.run_dir),
        RECONCILE_INTERVAL_SECONDS="0",
        TASK_QUEUE_PREFIX=prefix,
        METRICS_PORT=str(ports.worker_metrics),
    )
    control = ControlDir(local_stack.run_dir)
    pid_before = local_stack.running["web"].process.pid
    first = start_worker(tmp_path, env, "1")
    second: subprocess.Popen[bytes] | None = None
    try:
        handle: WorkflowHandle[RestartComponent, object] = await temporal_env.client.start_workflow(
            RestartComponent.run,
            RestartInput(["web"], deadline_seconds=60, poll_seconds=0.2),
            id=f"restart-{uuid.uuid4()}",
            task_queue=prefix + "sentinel-restarts",
        )
        # The first worker picked the restart up and is waiting for the (not yet serving) supervisor.
        await _wait_for(lambda: bool(control.pending()), 60, "the restart request")
        await _wait_until_waiting(handle)
        # The replacement starts first (its start-up overlaps the heartbeat timeout), then the kill.
        second = start_worker(tmp_path, {**env, "METRICS_PORT": str(ports.api_metrics)}, "2")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        with serving(local_stack):
            result = await asyncio.wait_for(handle.result(), 60)
        assert result.ok, result  # type: ignore[attr-defined]
        assert local_stack.running["web"].process.pid != pid_before
        # Exactly one restart was requested and answered, despite the retried activity.
        assert len(list(control.results.glob("*.json"))) == 1 and control.pending() == []
        history = await handle.fetch_history()
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
        ]
        assert max(attempts) >= 2  # the wait was retried on the second worker
        metrics = _scrape(f"http://127.0.0.1:{ports.api_metrics}/metrics")
        assert "temporal_" in metrics
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
