"""The `prometheus` part: Debian's Prometheus scraping every local metrics port.

The config is generated from the port map into `<data>/prometheus/prometheus.yml` and loads the
project's alert rules (dashboards/rules), so alerts evaluate locally exactly as in the cluster.
Skipped with a warning when the `prometheus` binary is not installed.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import yaml

from localstack.config import REPO_ROOT, StackConfig
from localstack.supervisor import Component

log = logging.getLogger(__name__)

# job name -> Ports field of the component's metrics listener.
SCRAPE_TARGETS = {
    "ingest": "ingest_metrics",
    "processor": "processor_metrics",
    "dispatcher": "dispatcher_metrics",
    "api": "api_metrics",
    "worker": "worker_metrics",
    "reconciler": "reconciler_metrics",
    "sidecar-server-a": "sidecar_a_metrics",
    "sidecar-server-b": "sidecar_b_metrics",
    "temporal": "temporal_metrics",
    "prometheus": "prometheus",
}
RULES_DIR = REPO_ROOT / "dashboards" / "rules"


def render_config(cfg: StackConfig, rules_dir: Path = RULES_DIR) -> dict[str, object]:
    """The Prometheus configuration for this port map (one job per component)."""
    jobs = [
        {
            "job_name": job,
            "static_configs": [{"targets": [f"{cfg.host}:{getattr(cfg.ports, port)}"], "labels": {"stack": "local"}}],
        }
        for job, port in SCRAPE_TARGETS.items()
    ]
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(rules_dir / "*.yaml")],
        "scrape_configs": jobs,
    }


def write_config(cfg: StackConfig) -> Path:
    """Write `<data>/prometheus/prometheus.yml` and return its path."""
    path = cfg.path("prometheus", "prometheus.yml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(render_config(cfg), sort_keys=False))
    return path


def components(cfg: StackConfig) -> list[Component]:
    """The Prometheus server, or nothing (with a warning) when it is not installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        msg = "WARNING: prometheus is not installed (Debian package `prometheus`); local metrics are not collected."
        log.warning(msg)
        print(msg, file=sys.stderr)  # noqa: T201 - must be visible in `./dev up` output without logging config
        return []
    config = write_config(cfg)
    return [
        Component(
            name="prometheus",
            argv=[
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={cfg.path('prometheus', 'data')}",
                f"--web.listen-address={cfg.host}:{cfg.ports.prometheus}",
                "--storage.tsdb.retention.time=7d",
                "--web.enable-lifecycle",
            ],
            health_url=cfg.url("prometheus", "/-/ready"),
            startup_timeout=60.0,
            description=f"on {cfg.url('prometheus')}",
        )
    ]
