"""The local-stack control channel (`localstack.control`) against a real Supervisor."""

from __future__ import annotations

from pathlib import Path

from localstack.config import Ports, StackConfig
from localstack.control import ControlDir, serve_pending
from localstack.supervisor import PYTHON, Component, Supervisor


def test_requests_are_answered_once_and_bad_ones_get_clear_errors(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    port = cfg.ports.ui
    with Supervisor(cfg) as sup:
        sup.start(Component("web", [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1"], health_port=port))
        control = ControlDir(sup.run_dir)
        assert control.components() == ["web"]
        pid = sup.running["web"].process.pid

        control.request_restart("web", "r1")
        control.request_restart("web", "r1")  # a retried caller: still one request
        control.request_restart("ghost", "r2")
        control.requests.mkdir(parents=True, exist_ok=True)
        (control.requests / "garbled.json").write_text("{not json")
        assert control.result("r1") is None

        done = {r.request_id: r for r in serve_pending(sup)}
        assert set(done) == {"r1", "r2", "garbled"}
        assert done["r1"].ok and sup.running["web"].process.pid != pid
        assert not done["r2"].ok and done["r2"].detail == "unknown component 'ghost'"
        assert not done["garbled"].ok and done["garbled"].detail.startswith("unsupported control request")
        assert control.pending() == []
        # Answered requests are remembered: asking again neither re-queues nor restarts.
        new_pid = sup.running["web"].process.pid
        control.request_restart("web", "r1")
        assert serve_pending(sup) == [] and sup.running["web"].process.pid == new_pid
        result = control.result("r1")
        assert result is not None and result.ok and result.component == "web"


def test_a_component_that_fails_to_come_back_is_reported(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    flag = tmp_path / "healthy"
    flag.touch()
    with Supervisor(cfg) as sup:
        sup.start(
            Component(
                "flaky",
                [PYTHON, "-c", "import time; time.sleep(60)"],
                health_check=flag.exists,
                startup_timeout=1.0,
            )
        )
        flag.unlink()  # after a restart it never becomes healthy
        control = ControlDir(sup.run_dir)
        control.request_restart("flaky", "r1")
        (result,) = serve_pending(sup)
        assert not result.ok and "not healthy" in result.detail
