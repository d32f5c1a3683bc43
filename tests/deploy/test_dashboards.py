"""Dashboards and alert rules: generated output is current, type-checks against the Grafana
schema, rules pass promtool, and every expression references metrics the code exports."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from localstack.config import REPO_ROOT
from tests.helpers.metric_catalog import BUILTIN, EXTERNAL, exported_series, referenced_metrics

DASHBOARDS = REPO_ROOT / "dashboards"
RULES = DASHBOARDS / "rules" / "mcp-sentinel.rules.yaml"
TSC = REPO_ROOT / "node_modules" / ".bin" / "tsc"


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def _expressions() -> list[tuple[str, str]]:
    """(where, expr) for every dashboard target and alert rule."""
    out = [
        (f"{name}.json: {panel['title']}", target["expr"])
        for name, dash in _dashboards().items()
        for panel in dash["panels"]
        for target in panel.get("targets", [])
    ]
    out.extend(
        (f"rule {rule['alert']}", rule["expr"])
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    )
    return out


def test_generated_files_are_current() -> None:
    build = _build_module()
    stale = [str(p) for p, text in build.outputs().items() if not p.exists() or p.read_text() != text]
    assert not stale, f"run `python dashboards/build.py`; stale: {stale}"


def test_the_three_dashboards_exist_with_panels() -> None:
    dashes = _dashboards()
    assert set(dashes) == {"gateway", "pipeline", "api"}
    for name, dash in dashes.items():
        assert dash["panels"], name
        assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
        assert dash["uid"] == f"mcp-sentinel-{name}"


def test_every_expression_references_only_exported_metrics() -> None:
    exported = exported_series()
    assert "mcp_gateway_requests_total" in exported, "the catalog must see the sidecar's metric definitions"
    unknown = {
        (where, name)
        for where, expr in _expressions()
        for name in referenced_metrics(expr)
        if name not in exported and name not in BUILTIN and name not in EXTERNAL
    }
    assert not unknown, f"expressions reference metrics no component exports: {sorted(unknown)}"


def test_external_series_come_from_an_exporter_the_kustomization_deploys() -> None:
    kustomization = yaml.safe_load((REPO_ROOT / "knative" / "kustomization.yaml").read_text())
    for name, manifest in EXTERNAL.items():
        assert manifest.removeprefix("knative/") in kustomization["resources"], name
        (deployment,) = [d for d in yaml.safe_load_all((REPO_ROOT / manifest).read_text()) if d["kind"] == "Deployment"]
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        (container,) = pod["spec"]["containers"]
        assert container["image"].startswith("docker.io/danielqsj/kafka-exporter:")
        assert "--kafka.server=mcp-kafka-bootstrap.kafka.svc.cluster.local:9092" in container["args"]


def _exporter_filters() -> tuple[re.Pattern[str], re.Pattern[str]]:
    manifest = REPO_ROOT / EXTERNAL["kafka_consumergroup_lag"]
    (deployment,) = [d for d in yaml.safe_load_all(manifest.read_text()) if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    return re.compile(args["topic.filter"]), re.compile(args["group.filter"])


def test_exporter_filters_keep_what_the_expressions_select() -> None:
    # The exporter only exports the topics and group it is told to: each one an expression selects
    # must pass its filters, or the cluster alerts would watch series that never exist.
    topics, groups = _exporter_filters()
    for _, expr in _expressions():
        for topic in re.findall(r'topic="([^"]+)"', expr):
            assert topics.search(topic), topic
        for group in re.findall(r'consumergroup="([^"]+)"', expr):
            assert groups.search(group), group
    assert topics.search("mcp.events") and topics.search("mcp.events.dlq") and not topics.search("mcp.eventsX")


RULE_TESTS = Path(__file__).with_name("alert_rules_test.yaml")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed")
def test_alerts_fire_on_local_and_cluster_series(tmp_path: Path) -> None:
    # promtool's rule unit tests: each lag / dead-letter alert fires from the local dispatcher's
    # series and from the cluster's kafka-exporter series, and stays quiet when nothing happens.
    suite = tmp_path / "alerts_test.yaml"
    suite.write_text(RULE_TESTS.read_text().replace("RULES_FILE", str(RULES)))
    proc = subprocess.run(["promtool", "test", "rules", str(suite)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The suite can fail: the same expectations against rules without the cluster form do.
    old = yaml.safe_load(RULES.read_text())
    for group in old["groups"]:
        for rule in group["rules"]:
            rule["expr"] = rule["expr"].split(" or ")[0]
    stripped = tmp_path / "rules.yaml"
    stripped.write_text(yaml.safe_dump(old))
    suite.write_text(RULE_TESTS.read_text().replace("RULES_FILE", str(stripped)))
    proc = subprocess.run(["promtool", "test", "rules", str(suite)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "AuditConsumerLagHigh" in proc.stdout + proc.stderr


def test_every_expression_references_some_metric() -> None:
    for where, expr in _expressions():
        assert referenced_metrics(expr), f"{where}: {expr!r} references no metric"


def test_required_alerts_are_present() -> None:
    rules = {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    # audit spool growing, dead letters, deny spike, consumer lag, policy reload failures; each has a severity.
    for alert in ("AuditSpoolGrowing", "AuditEventsDropped", "AuditEventsDeadLettered", "AuditConsumerLagHigh",
                  "PolicyDenySpike", "PolicyReloadFailures"):
        assert alert in rules
        assert rules[alert]["labels"]["severity"] in {"warning", "critical"}


def test_reference_extraction_sees_metric_names_only() -> None:
    expr = (
        'sum by (le, route) (rate(foo_bucket{status=~"5..", le="0.1"}[5m])) / on(instance) '
        "group_left(x) bar_total offset 5m > 3 * (baz + 1e-9)"
    )
    assert referenced_metrics(expr) == {"foo_bucket", "bar_total", "baz"}


def test_catalog_expands_client_suffixes(tmp_path: Path) -> None:
    pkg = tmp_path / "sidecar"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        'Counter("a_total", "d")\nHistogram(\n    "b_seconds", "d")\n'
        'CounterMetricFamily("c", "d", 1)\nGauge("g", "d")\n'
    )
    found = exported_series(tmp_path)
    assert {"a_total", "b_seconds_bucket", "b_seconds_count", "c_total", "g"} <= set(found)
    assert "a_total_total" not in found and "b_seconds" not in found


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed")
def test_rules_pass_promtool(tmp_path: Path) -> None:
    proc = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # And promtool really checks: a broken expression fails.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"alert": "A", "expr": "sum(rate(x[5m]"}]}]}))
    assert subprocess.run(["promtool", "check", "rules", str(bad)], capture_output=True, timeout=60).returncode != 0


def _tsc(tmp_path: Path, dashboards: dict[str, str]) -> subprocess.CompletedProcess[str]:
    files = []
    for name, text in dashboards.items():
        ts = tmp_path / f"{name}.ts"
        ts.write_text(
            "import type { Dashboard } from '@grafana/schema';\n"
            f"export const d = {text.strip()} satisfies Dashboard;\n"
        )
        files.append(str(ts))
    return subprocess.run(
        [str(TSC), "--noEmit", "--strict", "--skipLibCheck", "--moduleResolution", "node", "--module", "commonjs",
         "--baseUrl", str(REPO_ROOT / "node_modules"), *files],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.skipif(
    shutil.which("node") is None or not TSC.exists() or not (REPO_ROOT / "node_modules/@grafana/schema").exists(),
    reason="node, typescript or @grafana/schema is missing (run ./dev with npm installed)",
)
def test_dashboards_type_check_against_grafana_schema(tmp_path: Path) -> None:
    good = {p.stem: p.read_text() for p in sorted(DASHBOARDS.glob("*.json"))}
    bad_doc = json.loads(good["api"])
    bad_doc["title"] = 7
    bad_doc["panels"][0]["gridPos"]["h"] = "8"
    proc = _tsc(tmp_path, {**good, "broken": json.dumps(bad_doc)})
    errors = proc.stdout + proc.stderr
    # Only the deliberately broken copy fails, on exactly the two fields we broke.
    assert proc.returncode != 0
    offending = {Path(line.split("(")[0]).name for line in errors.splitlines() if "error TS" in line}
    assert offending == {"broken.ts"}, errors
    assert errors.count("error TS") == 2, errors
