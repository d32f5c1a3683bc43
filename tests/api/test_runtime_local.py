"""`/api/runtime/components` and `/actions/restart` over the local stack, as `sentinel up` runs it.

Real processes under a real `Supervisor` (the `postgres`, `sample_mcp`, `api` and `worker` parts),
a real Temporal dev server, the real worker with `RESTART_BACKEND=local`, and a thread playing the
`sentinel up` loop (`serve_pending`). The API learns the stack from the env its part sets.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from localstack.components import PART_ORDER, local_stack
from localstack.config import Ports, StackConfig
from localstack.control import serve_pending
from localstack.parts import worker as worker_part
from localstack.status import local_status, stack_config, stack_env
from localstack.supervisor import Component, Supervisor

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]

# Serves HTTP until a marker file exists; then it refuses to start (a restart that fails).
FLAKY = """
import http.server, os, sys
if os.path.exists(sys.argv[2]):
    sys.exit("refusing to start: " + sys.argv[2])
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


@dataclasses.dataclass
class Stack:
    cfg: StackConfig
    sup: Supervisor
    marker: Path

    def pid(self, name: str) -> int:
        return self.sup.running[name].process.pid

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"x-api-key": self.cfg.admin_api_key, **kw.pop("headers", {})}
        return httpx.request(method, self.cfg.url("api", path), headers=headers, timeout=120, **kw)


@pytest.fixture(scope="module")
def stack(temporal_env: WorkflowEnvironment) -> Iterator[Stack]:
    data = Path(tempfile.mkdtemp(prefix="sentinel-runtime-"))
    data.chmod(0o755)  # the postgres part runs as the postgres user
    temporal_port = int(temporal_env.client.service_client.config.target_host.rsplit(":", 1)[1])
    cfg = StackConfig(data_dir=data, ports=dataclasses.replace(Ports.free(), temporal=temporal_port))
    worker = worker_part.components(cfg)[0]
    # No reconcile schedule: this Temporal server is shared by the test session.
    worker = dataclasses.replace(worker, env={**worker.env, "RECONCILE_INTERVAL_SECONDS": "0"})
    flaky = Component(
        name="flaky", argv=[sys.executable, "-c", FLAKY, str(cfg.ports.s3), str(data / "no-restart")],
        health_port=cfg.ports.s3, startup_timeout=20,
    )
    stop = threading.Event()

    def up_loop(sup: Supervisor) -> None:  # the `sentinel up` main loop's part
        while not stop.is_set():
            serve_pending(sup)
            time.sleep(0.1)

    try:
        with Supervisor(cfg) as sup:
            sup.start_all([*local_stack(cfg, only={"postgres", "sample_mcp", "api"}), worker, flaky])
            loop = threading.Thread(target=up_loop, args=(sup,), daemon=True)
            loop.start()
            try:
                yield Stack(cfg, sup, data / "no-restart")
            finally:
                stop.set()
                loop.join(30)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def rows_by_name(stack: Stack) -> dict[str, dict[str, Any]]:
    r = stack.call("GET", "/api/runtime/components")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["backend"] == "local"
    return {row["name"]: row for row in body["components"]}


async def test_components_are_the_local_stack_processes(stack: Stack) -> None:
    rows = rows_by_name(stack)
    # Every component `sentinel up` would run is listed, running or not.
    assert set(rows) == {c.name for c in local_stack(stack.cfg)}
    assert "kafka" in PART_ORDER and rows["kafka"]["state"] == "stopped" and rows["kafka"]["healthy"] is False
    for name in ("postgres", "sample_mcp", "api", "worker"):
        row = rows[name]
        assert row["healthy"] is True and row["ready"] is True and row["state"] == "healthy", row
        assert row["pid"] == stack.pid(name)
        assert 0 <= row["uptime_seconds"] < 600 and row["started_at"] <= time.time()
        assert row["description"]
    assert rows["api"]["probe"] == stack.cfg.url("api", "/ready")
    assert rows["postgres"]["probe"] == f"tcp 127.0.0.1:{stack.cfg.ports.postgres}"  # not its custom check


async def test_restart_one_component_restarts_its_process(stack: Stack) -> None:
    before = stack.pid("sample_mcp")
    r = stack.call("POST", "/api/runtime/actions/restart", json={"component": "sample_mcp"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["component"] == "sample_mcp"
    assert [(o["component"], o["ok"]) for o in body["outcomes"]] == [("sample_mcp", True)]
    after = stack.pid("sample_mcp")
    assert after != before and stack.sup.running["sample_mcp"].process.poll() is None
    row = rows_by_name(stack)["sample_mcp"]
    assert row["pid"] == after and row["healthy"] is True


async def test_unknown_component_is_a_400_and_nothing_restarts(stack: Stack) -> None:
    pids = {n: stack.pid(n) for n in stack.sup.running}
    r = stack.call("POST", "/api/runtime/actions/restart", json={"component": "ghost"})
    assert r.status_code == 400 and "ghost" in r.json()["message"], r.text
    empty = stack.call("POST", "/api/runtime/actions/restart", json={})
    assert empty.status_code == 400 and empty.json()["message"] == "component required"
    assert {n: stack.pid(n) for n in stack.sup.running} == pids


async def test_a_failed_restart_reports_each_component(stack: Stack) -> None:
    stack.marker.write_text("the next start fails")
    try:
        r = stack.call("POST", "/api/runtime/actions/restart", json={"component": "flaky"})
    finally:
        stack.marker.unlink()
    assert r.status_code == 500, r.text
    body = r.json()
    assert body["error"] == "restart_failed" and "flaky" in body["message"]
    assert [(o["component"], o["ok"]) for o in body["outcomes"]] == [("flaky", False)]
    assert "exited with code" in body["outcomes"][0]["detail"]


async def test_restart_all_leaves_the_request_path_running(stack: Stack) -> None:
    if "flaky" not in stack.sup.running:  # the previous test's failed restart removed it
        stack.sup.start(Component(
            name="flaky", argv=[sys.executable, "-c", FLAKY, str(stack.cfg.ports.s3), str(stack.marker)],
            health_port=stack.cfg.ports.s3, startup_timeout=20,
        ))
    before = {n: stack.pid(n) for n in stack.sup.running}
    r = stack.call("POST", "/api/runtime/actions/restart", json={"all": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["restarted"] == "all"
    assert sorted(o["component"] for o in body["outcomes"] if o["ok"]) == ["flaky", "postgres", "sample_mcp"]
    assert sorted(body["skipped"]) == ["api", "worker"]
    after = {n: stack.pid(n) for n in stack.sup.running}
    assert after["api"] == before["api"] and after["worker"] == before["worker"]
    assert all(after[n] != before[n] for n in ("flaky", "postgres", "sample_mcp"))


async def test_stack_config_round_trips_through_the_api_env(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    env = stack_env(cfg)
    again = stack_config(env["SENTINEL_RUN_DIR"], env["SENTINEL_STACK_PORTS"])
    assert again.ports == cfg.ports and again.data_dir == tmp_path
    with pytest.raises(ValueError, match="SENTINEL_STACK_PORTS"):
        stack_config(str(tmp_path / "run"), "[1, 2]")
    with pytest.raises(ValueError, match="SENTINEL_RUN_DIR"):
        stack_config("", "{}")


async def test_a_stale_pidfile_is_stopped_and_a_dead_port_unhealthy(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    run = cfg.path("run")
    run.mkdir(parents=True)
    (run / "gone.pid").write_text("999999999")  # no such process
    (run / "deaf.pid").write_text(str(os.getpid()))  # alive, but nothing listens on its port
    comps = [
        Component(name="gone", argv=[], health_port=cfg.ports.ui),
        Component(name="deaf", argv=[], health_url=cfg.url("api", "/ready")),
    ]
    by = {s.name: s for s in local_status(cfg, comps, timeout=0.5)}
    assert by["gone"].state == "stopped" and by["gone"].pid is None and by["gone"].uptime_seconds is None
    assert by["deaf"].state == "unhealthy" and by["deaf"].pid is not None and "failed" in by["deaf"].detail
