"""Stop means stopped (issue 17, item 7): `down` returns once every process has exited; `up` right after works.

`sentinel up --detach` then `sentinel down` then `sentinel up --detach` again, back to back, on free
ports: the second `up` succeeds (it used to fail "address already in use": `down` returned while the
broker gate and the API still listened). The parts are the broker (`s3`, `kafka`: tansu under its
gate, a process group of two) and `ingest`. A component that ignores SIGTERM is killed after the
grace period and named; `up` refuses clearly while a previous stack still runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localstack.config import Ports, StackConfig
from localstack.shutdown import STOPPING, group_alive, live_components, recorded_groups
from mcp_sentinel.cli.main import main

PARTS = "s3,kafka,ingest"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _reap(pids: list[int]) -> None:
    # Detached components started from this (test) process stay its children: collect their exit status.
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


@pytest.fixture()
def cfg(tmp_path: Path) -> StackConfig:
    return StackConfig(data_dir=tmp_path, ports=Ports.free())


def test_down_then_up_back_to_back(cfg: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    run = cfg.path("run")
    try:
        assert main(["up", "--detach", "--no-demo", "--only", PARTS], config=cfg) == 0
        first = recorded_groups(run)
        assert set(first) == {"s3", "kafka", "ingest"}
        assert _listening(cfg.ports.kafka) and _listening(cfg.ports.ingest)
        # While it runs, a second `up` is refused with a clear message (nothing started twice).
        capsys.readouterr()
        assert main(["up", "--detach", "--no-demo", "--only", PARTS], config=cfg) == 1
        assert "still running" in capsys.readouterr().out
        assert main(["down"], config=cfg) == 0
        out = capsys.readouterr().out
        assert "stopped:" in out and "kafka" in out
        # `down` returned: every process of every group is gone and no port is held.
        assert not any(group_alive(pgid) for pgid in first.values())
        assert not _listening(cfg.ports.kafka) and not _listening(cfg.ports.ingest) and not _listening(cfg.ports.s3)
        assert not list(run.glob("*.pid")) and not (run / STOPPING).exists()
        _reap(list(first.values()))
        assert main(["up", "--detach", "--no-demo", "--only", PARTS], config=cfg) == 0
        assert _listening(cfg.ports.kafka)
    finally:
        groups = recorded_groups(run)
        main(["down"], config=cfg)
        _reap(list(groups.values()))
    assert not live_components(run)


STUBBORN = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
print("ready", flush=True)
time.sleep(600)
"""


def test_a_component_ignoring_sigterm_is_killed_and_named(cfg: StackConfig, capsys: pytest.CaptureFixture[str]) -> None:
    run = cfg.path("run")
    run.mkdir(parents=True)
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN, str(cfg.ports.api)], start_new_session=True,
                                stdout=subprocess.PIPE)
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == b"ready"
        (run / "polite.pid").write_text(str(polite.pid))
        (run / "api.pid").write_text(str(stubborn.pid))
        t0 = time.monotonic()
        assert main(["down", "--grace", "1"], config=cfg) == 0
        took = time.monotonic() - t0
        out = capsys.readouterr().out
        assert "stopped: polite" in out and "killed (SIGKILL after 1s): api" in out
        assert polite.wait(5) == -signal.SIGTERM and stubborn.wait(5) == -signal.SIGKILL
        assert not _listening(cfg.ports.api) and took < 8
        assert not list(run.glob("*.pid"))
    finally:
        for p in (polite, stubborn):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_up_waits_for_a_down_in_progress_and_refuses_a_port_in_use(cfg: StackConfig,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = cfg.path("run")
    run.mkdir(parents=True)
    # A "component" still exiting while a `down` is in progress: `up` waits for it, then goes on.
    lingering = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"], start_new_session=True)
    (run / "kafka.pid").write_text(str(lingering.pid))
    (run / STOPPING).write_text("1")
    with socket.socket() as holder:  # ... and then finds the API port taken by someone else
        holder.bind(("127.0.0.1", cfg.ports.api))
        holder.listen()
        t0 = time.monotonic()
        assert main(["up", "--detach", "--no-demo"], config=cfg) == 1
        assert time.monotonic() - t0 >= 1.0
        out = capsys.readouterr().out
        assert "still stopping" in out and f"api ({cfg.ports.api})" in out and "ports already in use" in out
    lingering.wait(5)
