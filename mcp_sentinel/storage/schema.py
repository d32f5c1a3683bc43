"""The events table and its ordered, versioned migrations.

Differences from upstream §6.3 (and §11.25):

* `event_id` column and `ReplacingMergeTree` ordered by `(timestamp, event_id)`: a redelivered
  event (same id, hence same timestamp) collapses into one row. Every query reads with `FINAL`,
  so duplicates never show before background merges either.
* `PARTITION BY toYYYYMM(timestamp)` and a `TTL` set from `EVENTS_RETENTION_DAYS`.
* `reason`, `rpc_method` and `subject_team_id` (the caller's team) are materialised too;
  `team_id` stays the server's owning team.
* Low-cardinality dimensions use `LowCardinality(String)`; identifiers that are unique per
  session or trace (`session_id`, `trace_id`, `event_id`) stay plain `String` with bloom filters.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS_TABLE = "events"
MIGRATIONS_TABLE = "schema_migrations"

# (column, type, payload key) for every column materialised from the payload JSON.
MATERIALIZED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("server", "LowCardinality(String)"),
    ("namespace", "LowCardinality(String)"),
    ("team_id", "LowCardinality(String)"),
    ("cluster", "LowCardinality(String)"),
    ("human_id", "LowCardinality(String)"),
    ("agent_id", "LowCardinality(String)"),
    ("session_id", "String"),
    ("decision", "LowCardinality(String)"),
    ("tool_name", "LowCardinality(String)"),
    ("reason", "LowCardinality(String)"),
    ("rpc_method", "LowCardinality(String)"),
    ("subject_team_id", "LowCardinality(String)"),
)

INDEXES: tuple[tuple[str, str, str], ...] = (
    ("idx_events_event_id", "event_id", "bloom_filter(0.01)"),
    ("idx_events_trace_id", "trace_id", "bloom_filter(0.01)"),
    ("idx_events_session_id", "session_id", "bloom_filter(0.01)"),
    ("idx_events_server", "server", "set(1024)"),
    ("idx_events_namespace", "namespace", "set(1024)"),
    ("idx_events_team_id", "team_id", "set(1024)"),
    ("idx_events_subject_team_id", "subject_team_id", "set(1024)"),
    ("idx_events_human_id", "human_id", "bloom_filter(0.01)"),
    ("idx_events_agent_id", "agent_id", "bloom_filter(0.01)"),
    ("idx_events_decision", "decision", "set(32)"),
    ("idx_events_tool_name", "tool_name", "set(1024)"),
    ("idx_events_reason", "reason", "set(256)"),
    ("idx_events_source", "source", "set(256)"),
    ("idx_events_event_type", "event_type", "set(256)"),
)

INSERT_COLUMNS = ("event_id", "timestamp", "trace_id", "source", "event_type", "payload")
"""Columns a writer supplies; everything else is materialised or defaulted."""


@dataclass(frozen=True)
class Migration:
    """One schema step. Statements use `{db}` and `{retention_days}` placeholders and must be idempotent."""

    version: int
    name: str
    statements: tuple[str, ...]


def _events_ddl() -> str:
    cols = ",\n    ".join(
        f"{name} {typ} MATERIALIZED JSONExtractString(payload, '{name}')" for name, typ in MATERIALIZED_COLUMNS
    )
    idx = ",\n    ".join(f"INDEX {n} {c} TYPE {t} GRANULARITY 1" for n, c, t in INDEXES)
    return f"""CREATE TABLE IF NOT EXISTS {{db}}.{EVENTS_TABLE} (
    event_id String,
    timestamp DateTime64(3, 'UTC'),
    trace_id String,
    source LowCardinality(String),
    event_type LowCardinality(String),
    payload String CODEC(ZSTD(3)),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    {cols},
    {idx}
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, event_id)
TTL toDateTime(timestamp) + INTERVAL {{retention_days}} DAY
SETTINGS index_granularity = 8192"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create events table", (_events_ddl(),)),
)
