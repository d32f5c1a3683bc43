"""Processor settings (environment names shared with production manifests)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mcp_sentinel.env import SettingsError, choice, flag, integer, items, text
from mcp_sentinel.storage.client import ClickHouseSettings
from mcp_sentinel.storage.events import DEDUP_MODES

DEFAULT_PORT = 8085


MIN_DELIVERY_TOKEN_BYTES = 32


@dataclass(frozen=True)
class ProcessorSettings:
    """`PORT` (8085), `METRICS_PORT` (9102), ClickHouse settings, and micro-batching knobs.

    `BATCH_MAX_EVENTS` (10000) and `BATCH_MAX_WAIT_MS` (0) bound one INSERT; with 0 the batcher is
    a group commit (a delivery arriving while the writer is idle is written at once, deliveries
    arriving during an INSERT share the next one), which halves single-delivery latency
    compared with a 20 ms linger and still batches under load. `BATCH_BUSY_WAIT_MS` (50, 0 = off):
    until that long after an INSERT ended, the next INSERT waits for as many deliveries as were
    in flight then (senders deliver in a closed loop; fewer, larger INSERTs: the fixed cost per
    INSERT dominates, batcher.py); `BATCH_GROUPS` (1) splits those in-flight deliveries into
    that many alternating INSERTs (2: decoding overlaps inserting). `MAX_PENDING_EVENTS`
    (50000) is where intake pauses (requests wait) until ClickHouse catches up.
    `DEDUP_RECENT_IDS` (200000, 0 = off) bounds the set of recently stored ids that are skipped
    and counted as duplicates, warmed on start-up with the ids stored in the last
    `DEDUP_WARM_MINUTES` (15); `DEDUP_MODE=full` also asks the table about every other id (cost grows with the table).
    Who may deliver: `PROCESSOR_DELIVERY_TOKEN`, `PROCESSOR_OIDC_*`, `PROCESSOR_ALLOW_UNAUTHENTICATED`
    (`functions/processor/delivery_auth.py`).
    """

    port: int = DEFAULT_PORT
    metrics_port: int = 9102
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    batch_max_events: int = 10_000
    batch_max_wait_ms: int = 0
    batch_busy_wait_ms: int = 50
    batch_groups: int = 1
    max_pending_events: int = 50_000
    service_name: str = "mcp-sentinel-processor"
    dedup_recent_ids: int = 200_000
    dedup_warm_minutes: int = 15
    dedup_mode: str = "recent"
    delivery_tokens: tuple[str, ...] = ()
    oidc_jwks_url: str = ""
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_subjects: tuple[str, ...] = ()
    allow_unauthenticated: bool = False
    rollup_seal_seconds: int = 60

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProcessorSettings:
        """Read settings; SettingsError names the bad variable."""
        env = os.environ if environ is None else environ
        tokens = items(env, "PROCESSOR_DELIVERY_TOKEN")
        if any(len(t.encode()) < MIN_DELIVERY_TOKEN_BYTES for t in tokens):
            raise SettingsError(f"PROCESSOR_DELIVERY_TOKEN must be at least {MIN_DELIVERY_TOKEN_BYTES} bytes")
        jwks = text(env, "PROCESSOR_OIDC_JWKS_URL")
        audience = text(env, "PROCESSOR_OIDC_AUDIENCE")
        if bool(jwks) != bool(audience):
            raise SettingsError("PROCESSOR_OIDC_JWKS_URL and PROCESSOR_OIDC_AUDIENCE are set together "
                                "(sender identity)")
        return cls(
            port=integer(env, "PORT", DEFAULT_PORT, minimum=1, maximum=65535),
            metrics_port=integer(env, "METRICS_PORT", 9102, minimum=0, maximum=65535),
            clickhouse=ClickHouseSettings.from_env(env),
            batch_max_events=integer(env, "BATCH_MAX_EVENTS", 10_000, minimum=1),
            batch_max_wait_ms=integer(env, "BATCH_MAX_WAIT_MS", 0, minimum=0),
            batch_busy_wait_ms=integer(env, "BATCH_BUSY_WAIT_MS", 50, minimum=0),
            batch_groups=integer(env, "BATCH_GROUPS", 1, minimum=1, maximum=8),
            max_pending_events=integer(env, "MAX_PENDING_EVENTS", 50_000, minimum=1),
            service_name=text(env, "OTEL_SERVICE_NAME", "mcp-sentinel-processor"),
            dedup_recent_ids=integer(env, "DEDUP_RECENT_IDS", 200_000, minimum=0),
            dedup_warm_minutes=integer(env, "DEDUP_WARM_MINUTES", 15, minimum=0),
            dedup_mode=choice(env, "DEDUP_MODE", "recent", DEDUP_MODES),
            delivery_tokens=tokens,
            oidc_jwks_url=jwks,
            oidc_issuer=text(env, "PROCESSOR_OIDC_ISSUER"),
            oidc_audience=audience,
            oidc_subjects=items(env, "PROCESSOR_OIDC_SUBJECTS"),
            allow_unauthenticated=flag(env, "PROCESSOR_ALLOW_UNAUTHENTICATED"),
            rollup_seal_seconds=integer(env, "ROLLUP_SEAL_SECONDS", 60, minimum=0),
        )
