"""The `prometheus` part: generated config passes promtool; the real server scrapes local ports."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, start_http_server

from localstack.config import Ports, StackConfig
from localstack.parts import prometheus as part
from localstack.supervisor import Supervisor

needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian prometheus not installed")


def test_config_has_one_job_per_metrics_port(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    rendered = part.render_config(cfg)
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in rendered["scrape_configs"]}  # type: ignore[index]
    assert jobs["ingest"] == [f"127.0.0.1:{cfg.ports.ingest_metrics}"]
    assert jobs["sidecar-server-b"] == [f"127.0.0.1:{cfg.ports.sidecar_b_metrics}"]
    assert set(jobs) == set(part.SCRAPE_TARGETS)
    # Every *_metrics port of the stack is scraped.
    metric_ports = {name for name in vars(cfg.ports) if name.endswith("_metrics")}
    assert metric_ports <= set(part.SCRAPE_TARGETS.values())


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_written_config_passes_promtool(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    path = part.write_config(cfg)
    assert path == tmp_path / "prometheus" / "prometheus.yml"
    proc = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr and "rule" in (proc.stdout + proc.stderr).lower()


def test_missing_binary_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert part.components(StackConfig(data_dir=tmp_path, ports=Ports.free())) == []
    assert "prometheus is not installed" in capsys.readouterr().err


@pytest.fixture()
def exporter(tmp_path: Path) -> Iterator[StackConfig]:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    registry = CollectorRegistry()
    Counter("ingest_events_accepted", "test", registry=registry).inc(3)
    server, thread = start_http_server(cfg.ports.ingest_metrics, addr="127.0.0.1", registry=registry)
    try:
        yield cfg
    finally:
        server.shutdown()
        thread.join(5)


def _query(cfg: StackConfig, promql: str) -> list[dict[str, object]]:
    url = cfg.url("prometheus", "/api/v1/query?query=" + urllib.request.quote(promql))
    with urllib.request.urlopen(url, timeout=5) as resp:
        result: list[dict[str, object]] = json.loads(resp.read())["data"]["result"]
        return result


@needs_prometheus
def test_real_prometheus_scrapes_components_and_loads_rules(exporter: StackConfig) -> None:
    cfg = exporter
    with Supervisor(cfg) as sup:
        sup.start_all(part.components(cfg))
        deadline = time.monotonic() + 60
        up: list[dict[str, object]] = []
        down: list[dict[str, object]] = []
        while time.monotonic() < deadline and not (up and down):
            up = _query(cfg, 'up{job="ingest"} == 1')
            # A component that is not running is reported down, not silently absent.
            down = _query(cfg, 'up{job="processor"} == 0')
            time.sleep(0.5)
        assert up, "prometheus never scraped the ingest metrics port"
        assert down, "a stopped component must show up == 0"
        assert _query(cfg, "ingest_events_accepted_total")[0]["value"][1] == "3"  # type: ignore[index]
        with urllib.request.urlopen(cfg.url("prometheus", "/api/v1/rules"), timeout=5) as resp:
            groups = json.loads(resp.read())["data"]["groups"]
        rules = {r["name"] for g in groups for r in g["rules"]}
        assert {"AuditSpoolGrowing", "PolicyReloadFailures"} <= rules
    assert yaml.safe_load((cfg.data_dir / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
