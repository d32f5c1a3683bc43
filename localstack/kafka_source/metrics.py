"""Prometheus families of the dispatcher (in the registry it is given: no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DispatcherMetrics:
    """Prometheus families of the dispatcher."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter("dispatcher_delivered_total", "Records the sink accepted (2xx)", registry=registry)
        self.retried = Counter("dispatcher_retries_total", "Delivery retries", ["reason"], registry=registry)
        self.dead_lettered = Counter("dispatcher_dead_lettered_total", "Records sent to the dead-letter topic",
                                     ["reason"], registry=registry)
        self.in_flight = Gauge("dispatcher_in_flight", "Records being delivered now", registry=registry)
        self.lag = Gauge("dispatcher_consumer_lag_records",
                         "Fetched but not yet committed records (from consumer positions, not the broker high "
                         "watermark, which tansu reports wrongly)", ["partition"], registry=registry)
        self.committed = Gauge("dispatcher_committed_offset", "Last committed offset", ["partition"],
                               registry=registry)
        self.batch_size = Histogram("dispatcher_batch_records", "Records per batch-mode POST", registry=registry,
                                    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
        self.poll_errors = Counter("dispatcher_poll_errors_total",
                                   "Polls that failed because the broker was unreachable (retried)", registry=registry)
        self.bisections = Counter("dispatcher_batch_bisections_total",
                                  "Refused batches split in two to isolate the refused records", registry=registry)
