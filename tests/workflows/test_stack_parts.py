"""The `temporal` and `worker` local-stack parts, started the way `sentinel up` starts them."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from localstack.config import Ports, StackConfig
from localstack.parts import kube as kube_part
from localstack.parts import postgres as postgres_part
from localstack.parts import temporal as temporal_part
from localstack.parts import worker as worker_part
from localstack.supervisor import Supervisor
from mcp_sentinel.identity.store import IdentityStore
from mcp_sentinel.kube.objects import KubeCluster, Ref
from tests.helpers.workflows import worker_env
from workflows.client import start_provision_team
from workflows.worker import WorkerSettings


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return int(resp.status), resp.read().decode(errors="replace")


def test_local_stack_parts_provision_a_team_end_to_end() -> None:
    """postgres + kube + temporal + worker parts as `sentinel up` runs them; the API's helper drives them."""
    # Not pytest's tmp_path: its 0700 parents are unreachable for the postgres user.
    data = Path(tempfile.mkdtemp(prefix="sentinel-wf-stack-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    parts = [postgres_part, kube_part, temporal_part, worker_part]
    try:
        with Supervisor(cfg) as sup:
            sup.start_all([c for part in parts for c in part.components(cfg)])
            status, _ = get(cfg.url("temporal_ui"))
            assert status == 200  # the Temporal UI is served (README link)
            for _ in range(100):  # SDK metrics appear once the pollers report
                status, metrics = get(cfg.url("worker_metrics", "/metrics"))
                if "temporal_" in metrics:
                    break
                time.sleep(0.1)
            assert status == 200 and "temporal_" in metrics

            async def drive() -> tuple[str, bool]:
                client = await Client.connect(f"{cfg.host}:{cfg.ports.temporal}")
                for _ in range(100):  # the worker creates it right after it opens its metrics port
                    try:
                        await client.get_schedule_handle("policy-reconcile").describe()
                        break
                    except RPCError:
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError("no policy-reconcile schedule")
                team = await start_provision_team(client, "stack-e2e", "Stack E2E", "", wait_seconds=60)
                store = await IdentityStore.open(postgres_part.postgres_dsn(cfg))
                try:
                    row = await store.get_team("stack-e2e")
                finally:
                    await store.close()
                return team.namespace, row is not None and row.id == team.team_id

            ns, in_store = asyncio.run(drive())
            assert ns == "mcp-team-stack-e2e" and in_store
            assert KubeCluster(str(cfg.kubeconfig)).get(Ref("v1", "ResourceQuota", ns, "team-quota")) is not None
        assert (data / "temporal" / "temporal.db").exists()  # durable across `sentinel up` runs
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_worker_part_environment_matches_the_conventions(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    settings = WorkerSettings.from_env(worker_part.worker_env(cfg))
    assert settings.temporal.address == f"127.0.0.1:{cfg.ports.temporal}"
    assert settings.restart_backend == "local" and settings.run_dir == str(tmp_path / "run")
    assert settings.policy_output_dir == str(tmp_path / "policies")
    assert settings.kubeconfig == str(cfg.kubeconfig)
    assert settings.metrics_port == cfg.ports.worker_metrics


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RESTART_BACKEND": "docker"}, "RESTART_BACKEND must be one of kubernetes, local"),
        ({"RESTART_BACKEND": "local"}, "RESTART_BACKEND=local needs SENTINEL_RUN_DIR"),
        ({"METRICS_PORT": "many"}, "METRICS_PORT must be an integer"),
        ({"RECONCILE_INTERVAL_SECONDS": "often"}, "RECONCILE_INTERVAL_SECONDS must be a number"),
    ],
)
def test_bad_worker_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WorkerSettings.from_env(env)


def test_product_worker_refuses_the_local_restart_backend(tmp_path: Path) -> None:
    """The local backend lives in localstack (product code never imports it): only its entry point injects it."""
    proc = subprocess.run(
        [sys.executable, "-m", "workflows"],
        env=worker_env(RESTART_BACKEND="local", SENTINEL_RUN_DIR=str(tmp_path)),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"python -m localstack.worker" in proc.stderr


def test_worker_process_exits_with_a_clear_error_on_bad_settings() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "workflows"],
        env=worker_env(RESTART_BACKEND="docker"),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"RESTART_BACKEND must be one of kubernetes, local" in proc.stderr


def test_settings_defaults_follow_the_documented_local_ports() -> None:
    s = WorkerSettings.from_env({})
    assert s.temporal.address == "127.0.0.1:17233" and s.temporal.namespace == "default"
    assert s.restart_backend == "kubernetes" and s.metrics_port == 9105
