"""Which metric names the code actually exports, and which ones a PromQL expression references.

Names are read from the source (every `Counter(`/`Gauge(`/`Histogram(`/`Summary(`/`Info(` and the
`*MetricFamily(` custom collectors) and expanded the way prometheus_client exposes them, so a
dashboard or alert can only reference a family some component really serves.
"""

from __future__ import annotations

import re
from pathlib import Path

from localstack.config import REPO_ROOT

PRODUCT_DIRS = ("localstack", "mcp_sentinel", "sidecar", "functions", "workflows", "examples")
# Series every Prometheus has without any exporter.
BUILTIN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
# Series of third-party exporters the deployment runs -> the manifest that deploys the exporter.
EXTERNAL = {
    "kafka_consumergroup_lag": "knative/observability/kafka-exporter.yaml",
    "kafka_topic_partition_current_offset": "knative/observability/kafka-exporter.yaml",
}

_DEFINITION = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|Info|Enum|CounterMetricFamily|GaugeMetricFamily|"
    r"HistogramMetricFamily|SummaryMetricFamily|InfoMetricFamily)\(\s*(?:name\s*=\s*)?"
    r"[\"']([a-zA-Z_:][a-zA-Z0-9_:]*)[\"']",
)
_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "CounterMetricFamily": ("_total", "_created"),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
    "Enum": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "SummaryMetricFamily": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "InfoMetricFamily": ("_info",),
}


def exported_series(root: Path = REPO_ROOT) -> dict[str, str]:
    """Every series name the product code can expose -> the file defining it."""
    found: dict[str, str] = {}
    for folder in PRODUCT_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            for kind, name in _DEFINITION.findall(path.read_text(errors="replace")):
                base = name
                if kind.startswith("Counter") and base.endswith("_total"):
                    base = base[: -len("_total")]  # prometheus_client strips and re-adds it
                for suffix in _SUFFIXES[kind]:
                    found.setdefault(base + suffix, str(path.relative_to(root)))
    return found


_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
     "inf", "nan", "le"}
)


def referenced_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, keywords, labels and literals removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range / subquery selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\b\d+(?:ms|s|m|h|d|w|y)\b", "", text)  # durations (offset 5m)
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        rest = text[match.end():].lstrip()
        if rest.startswith("("):
            continue  # a function call
        if match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names
