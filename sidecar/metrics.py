"""Prometheus metrics of one sidecar (own registry; served only on METRICS_PORT, §11.17)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sidecar.audit import AuditCounters

_KNOWN_RPC = frozenset(
    {
        "initialize",
        "notifications/initialized",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "server/discover",
    }
)
_KNOWN_HTTP = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
SCOPE = ("namespace", "server", "cluster", "team_id")
_REQ_LABELS = (*SCOPE, "method", "rpc_method", "decision", "status")


def rpc_label(method: str) -> str:
    """Bounded-cardinality label for a JSON-RPC method."""
    if not method:
        return "none"
    return method if method in _KNOWN_RPC else "other"


def http_label(method: str) -> str:
    """Bounded-cardinality label for an HTTP method."""
    return method if method in _KNOWN_HTTP else "OTHER"


class _AuditCollector(Collector):
    def __init__(self, counters: Callable[[], AuditCounters | None]) -> None:
        self._counters = counters

    def collect(self) -> Iterator[Any]:
        c = self._counters() or AuditCounters()
        yield CounterMetricFamily("mcp_gateway_audit_events_spooled", "Audit events written to the spool", c.spooled)
        yield CounterMetricFamily("mcp_gateway_audit_events_sent", "Audit events acknowledged by ingest", c.sent)
        yield CounterMetricFamily(
            "mcp_gateway_audit_events_replayed", "Audit events from a previous run delivered after restart", c.replayed
        )
        dropped = CounterMetricFamily(
            "mcp_gateway_audit_events_dropped", "Audit events dropped, by reason", labels=["reason"]
        )
        dropped.add_metric(["spool_full"], c.dropped_full)
        dropped.add_metric(["corrupt_spool"], c.dropped_corrupt)
        yield dropped
        yield CounterMetricFamily(
            "mcp_gateway_audit_events_quarantined",
            "Audit events ingest refused one by one, kept in the spool's rejected.jsonl",
            c.quarantined,
        )
        yield CounterMetricFamily(
            "mcp_gateway_audit_credential_refused",
            "Audit batches ingest refused for the gateway's credential (401/403); alert on any increase",
            c.credential_refused,
        )
        yield GaugeMetricFamily(
            "mcp_gateway_audit_spool_depth", "Audit events spooled but not yet acknowledged", c.depth
        )


class SidecarMetrics:
    """All metric families, with label children cached so the hot path does one dict lookup."""

    def __init__(self, audit_counters: Callable[[], AuditCounters | None]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mcp_gateway_requests", "Requests through the pipeline", _REQ_LABELS, registry=r)
        self.duration = Histogram(
            "mcp_gateway_request_duration_seconds", "Whole-exchange latency", _REQ_LABELS, registry=r
        )
        self.req_bytes = Counter("mcp_gateway_request_bytes", "Request body bytes", _REQ_LABELS, registry=r)
        self.resp_bytes = Counter("mcp_gateway_response_bytes", "Response body bytes", _REQ_LABELS, registry=r)
        self.inflight = Gauge("mcp_gateway_inflight_requests", "In-flight requests", SCOPE, registry=r)
        self.decisions = Counter(
            "mcp_gateway_policy_decisions",
            "Policy decisions by reason",
            (*SCOPE, "decision", "reason", "rpc_method"),
            registry=r,
        )
        self.added_latency = Histogram(
            "mcp_gateway_added_latency_seconds",
            "Time spent in the sidecar itself (excludes waiting for the upstream)",
            ("rpc_method",),
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=r,
        )
        # One reload family with one label vocabulary (upstream had two, §11.20).
        self.reloads = Counter(
            "mcp_gateway_policy_reloads", "Policy reload attempts after a file change", ("result",), registry=r
        )
        self.inventory_requests = Counter(
            "mcp_gateway_inventory_requests", "Live-inventory requests by outcome", ("result",), registry=r
        )
        self.pin_listings = Counter(
            "mcp_gateway_tool_pin_listings", "The gateway's own tools/list of the upstream (pinned tools), by result",
            ("result",), registry=r,
        )  # fmt: skip
        self.tls_reloads = Counter(
            "mcp_gateway_tls_reloads", "TLS certificate reloads after a file change", ("result",), registry=r
        )
        self.last_reload = Gauge(
            "mcp_gateway_policy_last_reload_success_timestamp_seconds", "Unix time of the last good reload", registry=r
        )
        self.revision = Gauge(
            "mcp_gateway_policy_active_revision_info",
            "The active policy revision",
            ("revision", "schema_version"),
            registry=r,
        )
        r.register(_AuditCollector(audit_counters))
        self._children: dict[tuple[str, ...], tuple[Any, Any, Any, Any]] = {}
        self._single: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """A cached labelled child: `labels()` costs a lock and a tuple build, too much per request."""
        key = (id(metric), *labels)
        ch = self._single.get(key)
        if ch is None:
            ch = self._single[key] = metric.labels(*labels)
        return ch

    def observe_request(
        self,
        scope: tuple[str, str, str, str],
        method: str,
        rpc: str,
        decision: str,
        status: int,
        seconds: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """Record one finished exchange."""
        key = (*scope, http_label(method), rpc_label(rpc), decision, str(status))
        ch = self._children.get(key)
        if ch is None:
            ch = (
                self.requests.labels(*key),
                self.duration.labels(*key),
                self.req_bytes.labels(*key),
                self.resp_bytes.labels(*key),
            )
            self._children[key] = ch
        ch[0].inc()
        ch[1].observe(seconds)
        if bytes_in:
            ch[2].inc(bytes_in)
        if bytes_out:
            ch[3].inc(bytes_out)

    def set_revision(self, revision: str, schema_version: str) -> None:
        """Keep only the live revision in the info gauge."""
        self.revision.clear()
        self.revision.labels(revision, schema_version).set(1)
