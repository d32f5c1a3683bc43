"""Generate the Grafana dashboards and Prometheus alert rules (committed output).

    python dashboards/build.py          # rewrite every generated file
    python dashboards/build.py --check  # exit 1 if a committed file is stale

Outputs: dashboards/{gateway,pipeline,api}.json, dashboards/rules/mcp-sentinel.rules.yaml and their
Kubernetes ConfigMaps under knative/observability/generated/ (kustomize cannot read files outside
its own folder, so the ConfigMaps carry copies). Every expression references only metric families
the code exports; tests/deploy/test_dashboards.py enforces that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphDrawStyle, TimeZoneBrowser
from grafana_foundation_sdk.models.dashboard import DataSourceRef

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "dashboards"
GENERATED = ROOT / "knative" / "observability" / "generated"
PROM = DataSourceRef(type_val="prometheus", uid="prometheus")

# Series of the cluster's kafka-exporter (knative/observability/kafka-exporter.yaml): the lag of the
# processor's consumer group, and the end offsets of the dead-letter topic (they grow per dead letter).
CLUSTER_LAG = 'kafka_consumergroup_lag{consumergroup="mcp-sentinel-processor", topic="mcp.events"}'
DLQ_OFFSET = 'kafka_topic_partition_current_offset{topic="mcp.events.dlq"}'

# (title, unit, [(expr, legend)], kind) per panel; kind is "ts" (time series) or "stat".
Panel = tuple[str, str, list[tuple[str, str]], str]

GATEWAY: list[Panel] = [
    ("Requests / s by decision", "reqps",
     [("sum by (decision) (rate(mcp_gateway_requests_total[5m]))", "{{decision}}")], "ts"),
    ("Deny ratio", "percentunit",
     [("sum(rate(mcp_gateway_requests_total{decision=\"deny\"}[5m]))"
       " / clamp_min(sum(rate(mcp_gateway_requests_total[5m])), 1e-9)",
       "deny ratio")], "stat"),
    ("Request latency p50 / p95 / p99", "s",
     [(f"histogram_quantile({q}, sum by (le) (rate(mcp_gateway_request_duration_seconds_bucket[5m])))",
       f"p{int(q * 100)}")
      for q in (0.5, 0.95, 0.99)], "ts"),
    ("Sidecar added latency p99 by RPC method", "s",
     [("histogram_quantile(0.99, sum by (le, rpc_method) (rate(mcp_gateway_added_latency_seconds_bucket[5m])))",
       "{{rpc_method}}")], "ts"),
    ("Policy decisions by reason", "reqps",
     [("sum by (decision, reason) (rate(mcp_gateway_policy_decisions_total[5m]))", "{{decision}} {{reason}}")], "ts"),
    ("In-flight requests by server", "short",
     [("sum by (namespace, server) (mcp_gateway_inflight_requests)", "{{namespace}}/{{server}}")], "ts"),
    ("Traffic (bytes / s)", "Bps",
     [("sum(rate(mcp_gateway_request_bytes_total[5m]))", "in"),
      ("sum(rate(mcp_gateway_response_bytes_total[5m]))", "out")], "ts"),
    ("Policy reloads by result", "short",
     [("sum by (result) (increase(mcp_gateway_policy_reloads_total[15m]))", "{{result}}")], "ts"),
    ("Seconds since last good policy reload", "s",
     [("time() - max by (instance) (mcp_gateway_policy_last_reload_success_timestamp_seconds)", "{{instance}}")],
     "stat"),
    ("Active policy revisions", "short",
     [("count by (revision, schema_version) (mcp_gateway_policy_active_revision_info)", "{{revision}}")], "stat"),
    ("Quota checks / s by result", "reqps",
     [("sum by (per, result) (rate(mcp_gateway_quota_checks_total[5m]))", "{{per}} {{result}}"),
      ("sum(mcp_gateway_quota_counters)", "live counters")], "ts"),
]

PIPELINE: list[Panel] = [
    ("Audit spool depth (events not yet acknowledged)", "short",
     [("sum by (instance) (mcp_gateway_audit_spool_depth)", "{{instance}}")], "ts"),
    ("Audit events: spooled / sent / replayed", "short",
     [("sum(rate(mcp_gateway_audit_events_spooled_total[5m]))", "spooled"),
      ("sum(rate(mcp_gateway_audit_events_sent_total[5m]))", "sent"),
      ("sum(rate(mcp_gateway_audit_events_replayed_total[5m]))", "replayed")], "ts"),
    ("Audit events dropped by reason", "short",
     [("sum by (reason) (increase(mcp_gateway_audit_events_dropped_total[1h]))", "{{reason}}")], "ts"),
    ("Ingest: events accepted / s", "short",
     [("sum by (mode) (rate(ingest_events_accepted_total[5m]))", "{{mode}}")], "ts"),
    ("Ingest: requests rejected by reason", "short",
     [("sum by (reason) (rate(ingest_requests_rejected_total[5m]))", "{{reason}}")], "ts"),
    ("Ingest: Kafka produce latency p99", "s",
     [("histogram_quantile(0.99, sum by (le) (rate(ingest_produce_duration_seconds_bucket[5m])))", "p99")], "ts"),
    ("Ingest: events per request p95", "short",
     [("histogram_quantile(0.95, sum by (le) (rate(ingest_request_events_bucket[5m])))", "p95")], "ts"),
    ("Dispatcher: delivered / retried / dead-lettered per second", "short",
     [("sum(rate(dispatcher_delivered_total[5m]))", "delivered"),
      ("sum by (reason) (rate(dispatcher_retries_total[5m]))", "retry {{reason}}"),
      ("sum by (reason) (rate(dispatcher_dead_lettered_total[5m]))", "dead-letter {{reason}}"),
      (f"sum(deriv({DLQ_OFFSET}[5m]))", "dead-letter (cluster: dead-letter topic growth)")], "ts"),
    ("Consumer lag (records)", "short",
     [("sum by (partition) (dispatcher_consumer_lag_records)", "partition {{partition}}"),
      (f"sum by (partition) ({CLUSTER_LAG})", "partition {{partition}} (cluster)")], "ts"),
    ("Processor: events stored / duplicates / rejected per second", "short",
     [("sum(rate(processor_events_inserted_total[5m]))", "stored"),
      ("sum(rate(processor_events_duplicate_total[5m]))", "duplicate"),
      ("sum by (reason) (rate(processor_events_rejected_total[5m]))", "rejected {{reason}}")], "ts"),
    ("Processor: ClickHouse insert latency p99", "s",
     [("histogram_quantile(0.99, sum by (le) (rate(processor_insert_latency_seconds_bucket[5m])))", "p99")], "ts"),
    ("Processor: batch size p50", "short",
     [("histogram_quantile(0.5, sum by (le) (rate(processor_batch_size_bucket[5m])))", "p50")], "ts"),
    ("Processor: intake paused", "short",
     [("max by (instance) (processor_intake_paused)", "{{instance}}")], "stat"),
    ("Components up", "short", [("up", "{{job}}")], "stat"),
]

API: list[Panel] = [
    ("API requests / s by status", "reqps",
     [("sum by (status) (rate(sentinel_api_requests_total[5m]))", "{{status}}")], "ts"),
    ("API 5xx ratio", "percentunit",
     [("sum(rate(sentinel_api_requests_total{status=~\"5..\"}[5m]))"
       " / clamp_min(sum(rate(sentinel_api_requests_total[5m])), 1e-9)",
       "5xx")], "stat"),
    ("API latency p95 by route", "s",
     [("histogram_quantile(0.95, sum by (le, route) (rate(sentinel_api_request_seconds_bucket[5m])))", "{{route}}")],
     "ts"),
    ("Top routes", "reqps",
     [("topk(10, sum by (route) (rate(sentinel_api_requests_total[5m])))", "{{route}}")], "ts"),
]

DASHBOARDS = {
    "gateway": ("MCP Sentinel / Gateway", "mcp-sentinel-gateway", GATEWAY),
    "pipeline": ("MCP Sentinel / Audit pipeline", "mcp-sentinel-pipeline", PIPELINE),
    "api": ("MCP Sentinel / API", "mcp-sentinel-api", API),
}

# Alert rules: (alert, expr, for, severity, summary).
RULES: list[tuple[str, str, str, str, str]] = [
    ("AuditSpoolGrowing",
     "sum by (instance) (mcp_gateway_audit_spool_depth) > 1000"
     " and sum by (instance) (deriv(mcp_gateway_audit_spool_depth[10m])) > 0",
     "10m", "warning",
     "Gateway {{ $labels.instance }} is spooling audit events faster than ingest acknowledges them"),
    ("AuditEventsDropped",
     "sum by (instance, reason) (increase(mcp_gateway_audit_events_dropped_total[10m])) > 0",
     "0m", "critical",
     "Gateway {{ $labels.instance }} dropped audit events ({{ $labels.reason }})"),
    ("IngestRejectingEvents",
     "sum by (reason) (rate(ingest_requests_rejected_total{reason!~\"unauthorized|forbidden\"}[5m])) > 1",
     "10m", "warning",
     "Ingest is rejecting audit events ({{ $labels.reason }})"),
    # Each of the next two reads the local dispatcher's series or, in a cluster where Knative's
    # dispatcher runs instead, the kafka-exporter's (knative/observability/kafka-exporter.yaml).
    ("AuditEventsDeadLettered",
     "sum by (reason) (increase(dispatcher_dead_lettered_total[10m])) > 0"
     f" or sum(max_over_time({DLQ_OFFSET}[10m]) - min_over_time({DLQ_OFFSET}[10m])) > 0",
     "0m", "warning",
     "Audit events were parked on the dead-letter topic{{ with $labels.reason }} ({{ . }}){{ end }}; "
     "inspect and replay them"),
    ("AuditConsumerLagHigh",
     f"sum(dispatcher_consumer_lag_records) > 10000 or sum({CLUSTER_LAG}) > 10000",
     "10m", "warning",
     "The processor is more than 10k audit events behind Kafka"),
    ("ProcessorIntakePaused",
     "max(processor_intake_paused) == 1",
     "10m", "critical",
     "The processor has paused intake for 10 minutes (ClickHouse is not keeping up or failing)"),
    ("PolicyDenySpike",
     "sum by (namespace, server) (rate(mcp_gateway_policy_decisions_total{decision=\"deny\"}[5m])) > 3 * "
     "(sum by (namespace, server) (rate(mcp_gateway_policy_decisions_total{decision=\"deny\"}[1h] offset 5m)) + 0.05)",
     "5m", "warning",
     "Denials on {{ $labels.namespace }}/{{ $labels.server }} tripled against the previous hour"),
    ("PolicyReloadFailures",
     "sum by (instance) (increase(mcp_gateway_policy_reloads_total{result=\"error\"}[10m])) > 0",
     "5m", "critical",
     "Gateway {{ $labels.instance }} cannot load its policy (running on the last good revision)"),
    ("PolicyRevisionSplit",
     "count(count by (revision) (mcp_gateway_policy_active_revision_info)) > 1",
     "15m", "warning",
     "Gateways have run different policy revisions for 15 minutes"),
    ("QuotaCounterTableFull",
     "sum by (instance) (increase(mcp_gateway_quota_checks_total{result=\"table_full\"}[10m])) > 0",
     "0m", "critical",
     "Gateway {{ $labels.instance }} refuses calls because its quota counter table is full (QUOTA_MAX_COUNTERS)"),
    ("ComponentDown", "up == 0", "5m", "critical", "{{ $labels.job }} on {{ $labels.instance }} is down"),
]


def _panel(title: str, unit: str, queries: list[tuple[str, str]], kind: str) -> Any:
    builder: Any = stat.Panel() if kind == "stat" else timeseries.Panel().draw_style(GraphDrawStyle.LINE)
    builder = builder.title(title).unit(unit).datasource(PROM).height(8).span(12)
    for i, (expr, legend) in enumerate(queries):
        builder = builder.with_target(
            prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)).datasource(PROM)
        )
    return builder


def build_dashboard(title: str, uid: str, panels: list[Panel]) -> dict[str, Any]:
    """One dashboard as plain JSON-ready data."""
    d = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["mcp-sentinel"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone(TimeZoneBrowser)
        .editable()
    )
    for ptitle, unit, queries, kind in panels:
        d = d.with_panel(_panel(ptitle, unit, queries, kind))
    data: dict[str, Any] = _drop_nulls(json.loads(json.dumps(d.build(), cls=JSONEncoder)))
    # `style` (dark/light) left the dashboard schema in Grafana 10; the SDK still emits it.
    data.pop("style", None)
    for i, panel in enumerate(data["panels"], start=1):
        panel["id"] = i
    return data


def _drop_nulls(value: Any) -> Any:
    # The SDK serialises unset panel options as null, which the Grafana schema rejects.
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def build_rules() -> dict[str, Any]:
    """The Prometheus rule file."""
    rules = [
        {
            "alert": name,
            "expr": expr,
            "for": for_,
            "labels": {"severity": severity, "service": "mcp-sentinel"},
            "annotations": {"summary": summary},
        }
        for name, expr, for_, severity, summary in RULES
    ]
    return {"groups": [{"name": "mcp-sentinel", "rules": rules}]}


def _configmap(name: str, data: dict[str, str], comment: str) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "mcp-sentinel-observability",
                     "labels": {"app.kubernetes.io/part-of": "mcp-sentinel"}},
        "data": data,
    }
    return f"# {comment}\n" + yaml.safe_dump(doc, sort_keys=False, width=1000)


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files: dict[Path, str] = {}
    dashboards_json: dict[str, str] = {}
    for key, (title, uid, panels) in DASHBOARDS.items():
        text = json.dumps(build_dashboard(title, uid, panels), indent=2, sort_keys=True) + "\n"
        files[OUT / f"{key}.json"] = text
        dashboards_json[f"{key}.json"] = text
    rules_text = "# Generated by dashboards/build.py - edit that file, not this one.\n" + yaml.safe_dump(
        build_rules(), sort_keys=False, width=1000
    )
    files[OUT / "rules" / "mcp-sentinel.rules.yaml"] = rules_text
    note = "Generated by dashboards/build.py - edit that file, not this one."
    files[GENERATED / "grafana-dashboards.yaml"] = _configmap("grafana-dashboards", dashboards_json, note)
    files[GENERATED / "prometheus-rules.yaml"] = _configmap(
        "prometheus-rules", {"mcp-sentinel.rules.yaml": rules_text}, note
    )
    return files


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) the generated files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        print("stale generated files (run python dashboards/build.py):", *stale, sep="\n  ", file=sys.stderr)  # noqa: T201 - CLI output
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
