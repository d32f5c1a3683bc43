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

from mcp_sentinel.audit_payload import MATERIALIZED

EVENTS_TABLE = "events"
MIGRATIONS_TABLE = "schema_migrations"
ROLLUP_TABLE = "events_rollup"
SESSIONS_TABLE = "events_rollup_sessions"
SEALS_TABLE = "events_rollup_seals"
TOTALS_TABLE = "events_rollup_totals"
TOOL_SESSIONS_TABLE = "events_rollup_tool_sessions"
USAGE_SERVERS_TABLE = "events_usage_servers"
USAGE_TOOL_SERVERS_TABLE = "events_usage_tool_servers"
USAGE_ACTORS_TABLE = "events_usage_actors"
USAGE_TOOLS_TABLE = "events_usage_tools"
USAGE_TABLES = (USAGE_SERVERS_TABLE, USAGE_TOOL_SERVERS_TABLE, USAGE_ACTORS_TABLE, USAGE_TOOLS_TABLE)
SEAL_LAYOUT = 4
"""Seals record the migration version whose rollup tables they fill; a seal fills every table of its
layout and of the layouts before it (a seal by an older writer, e.g. mid rolling upgrade, has no
rows in the newer tables). The writer seals with this layout and reseals buckets sealed before it."""
ROLLUP_LAYOUT = 3
"""The oldest layout whose seals fill the wide, totals and sessions rollups: their readers trust
seals of this layout or newer, so they stay fast while an upgrade reseals (the usage rollups need
`SEAL_LAYOUT`)."""

# (column, type) for every column materialised from the payload JSON: the payload key of the same
# name, as the one audit payload schema declares it (mcp_sentinel/audit_payload.py).
MATERIALIZED_COLUMNS: tuple[tuple[str, str], ...] = tuple((f.name, f.column) for f in MATERIALIZED)

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


_LC = "LowCardinality(String)"

# Version 2: sealed hourly rollups (see storage/rollups.py) and the projections that serve reads.
# Statements run on upgrade against a populated table: `MATERIALIZE PROJECTION` rebuilds the
# projections of existing parts (with mutations_sync set by `migrate`), and `migrate` then seals
# every closed hour, which backfills the rollup from the existing events.
_ROLLUP_STATEMENTS: tuple[str, ...] = (
    # Projections in a ReplacingMergeTree must be rebuilt when a merge collapses duplicates,
    # or they would keep counting the rows merged away.
    f"ALTER TABLE {{db}}.{EVENTS_TABLE} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild'",
    f"ALTER TABLE {{db}}.{EVENTS_TABLE} ADD PROJECTION IF NOT EXISTS p_hour_fingerprint "
    "(SELECT toStartOfHour(timestamp), count(), sum(cityHash64(event_id)) GROUP BY toStartOfHour(timestamp))",
    f"ALTER TABLE {{db}}.{EVENTS_TABLE} MATERIALIZE PROJECTION p_hour_fingerprint",
    # `width` is the bucket's length in hours: 1 (hourly, for window edges and today) or 24
    # (daily, the bulk of any window). Sessions get their own rollup: keyed with the tool too
    # they would not compress at all (a session calls many tools).
    f"""CREATE TABLE IF NOT EXISTS {{db}}.{ROLLUP_TABLE} (
    width UInt8,
    bucket DateTime('UTC'),
    seal_id UInt64,
    source {_LC}, event_type {_LC}, server {_LC}, namespace {_LC}, team_id {_LC}, decision {_LC},
    tool_name {_LC}, human_id {_LC}, agent_id {_LC},
    events UInt64,
    last_seen DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (width, bucket, seal_id, server, namespace, team_id, decision, tool_name, human_id, agent_id)
TTL bucket + INTERVAL {{retention_days}} DAY + INTERVAL 1 DAY""",
    f"""CREATE TABLE IF NOT EXISTS {{db}}.{SESSIONS_TABLE} (
    width UInt8,
    bucket DateTime('UTC'),
    seal_id UInt64,
    server {_LC}, namespace {_LC}, team_id {_LC}, decision {_LC},
    session_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (width, bucket, seal_id, server, namespace, team_id, decision, session_id)
TTL bucket + INTERVAL {{retention_days}} DAY + INTERVAL 1 DAY""",
    f"""CREATE TABLE IF NOT EXISTS {{db}}.{SEALS_TABLE} (
    width UInt8,
    bucket DateTime('UTC'),
    seal_id UInt64,
    rows UInt64,
    hash UInt64,
    sealed_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (width, bucket, sealed_at)""",
)

# Version 3: a narrow rollup for the whole-table reads (count, sources, event types, dashboard)
# and sessions by tool;
# ~240 rows per bucket here instead of ~65k, so those reads no longer scale with the number of
# (human, agent, tool) combinations. Seals gain `layout`; older seals are ignored and resealed.
_TOTALS_STATEMENTS: tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS {{db}}.{TOTALS_TABLE} (
    width UInt8,
    bucket DateTime('UTC'),
    seal_id UInt64,
    source {_LC}, event_type {_LC}, server {_LC},
    events UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (width, bucket, seal_id, source, event_type, server)
TTL bucket + INTERVAL {{retention_days}} DAY + INTERVAL 1 DAY""",
    # Sessions keyed by tool too, ordered by tool first: unique sessions under a tool filter read
    # one tool's rows instead of `events FINAL` (2.6x the rows of the sessions rollup here).
    f"""CREATE TABLE IF NOT EXISTS {{db}}.{TOOL_SESSIONS_TABLE} (
    width UInt8,
    bucket DateTime('UTC'),
    seal_id UInt64,
    tool_name {_LC}, server {_LC}, namespace {_LC}, team_id {_LC}, decision {_LC},
    session_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (width, bucket, seal_id, tool_name, server, namespace, team_id, decision, session_id)
TTL bucket + INTERVAL {{retention_days}} DAY + INTERVAL 1 DAY""",
    f"ALTER TABLE {{db}}.{SEALS_TABLE} ADD COLUMN IF NOT EXISTS layout UInt8 DEFAULT 0",
)

_STATE = "AggregateFunction(uniqExactIf, String, UInt8)"
_USAGE_TTL = "TTL bucket + INTERVAL {retention_days} DAY + INTERVAL 1 DAY"


def _usage_table(name: str, columns: str, order: str, settings: str = "") -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {{db}}.{name} (\n    width UInt8, bucket DateTime('UTC'), seal_id UInt64,\n"
        f"    {columns}\n)\nENGINE = MergeTree\nPARTITION BY toYYYYMM(bucket)\n"
        f"ORDER BY (width, bucket, seal_id, {order})\n{_USAGE_TTL}{settings}"
    )


# Version 4: per-list usage rollups (storage/usage_rollups.py, decisions/audit-pipeline.md "Scale 5").
# Each holds only the keys its list groups or filters on, with `uniqExact` states for the distinct
# counts it reports, so a 30-day window reads thousands of rows instead of the wide rollup's
# millions. Seals of layout 3 have no rows here: readers ignore them and the writer reseals.
_USAGE_STATEMENTS: tuple[str, ...] = (
    _usage_table(
        USAGE_SERVERS_TABLE,
        f"server {_LC}, namespace {_LC}, team_id {_LC}, decision {_LC},\n"
        f"    events UInt64, last_seen DateTime64(3, 'UTC'), humans {_STATE}, agents {_STATE}",
        "server, namespace, team_id, decision",
    ),
    _usage_table(
        USAGE_TOOL_SERVERS_TABLE,
        f"tool_name {_LC}, server {_LC}, namespace {_LC}, team_id {_LC}, decision {_LC},\n"
        f"    events UInt64, last_seen DateTime64(3, 'UTC'), humans {_STATE}, agents {_STATE}",
        "tool_name, server, namespace, team_id, decision",
    ),
    _usage_table(
        USAGE_ACTORS_TABLE,
        f"human_id {_LC}, agent_id {_LC}, decision {_LC},\n"
        f"    events UInt64, last_seen DateTime64(3, 'UTC'), servers {_STATE}, tools {_STATE}",
        "human_id, agent_id, decision",
    ),
    # Ordered by `events` within a seal, in small granules: the pruned top-tools query (usage_lists.
    # top_tools) reads the largest rows of each bucket by primary key, and finds its few candidate
    # combinations' rows (`combo`) mostly in those same granules.
    _usage_table(
        USAGE_TOOLS_TABLE,
        f"server {_LC}, tool_name {_LC}, human_id {_LC}, team_id {_LC}, agent_id {_LC},\n"
        "    events UInt64, denied UInt64, last_seen DateTime64(3, 'UTC'), combo UInt32",
        "events",
        "\nSETTINGS index_granularity = 1024",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create events table", (_events_ddl(),)),
    Migration(2, "sealed hourly rollups and read projections", _ROLLUP_STATEMENTS),
    Migration(3, "totals and tool-sessions rollups; seals record their layout", _TOTALS_STATEMENTS),
    Migration(4, "per-list usage rollups with uniqExact states", _USAGE_STATEMENTS),
)
