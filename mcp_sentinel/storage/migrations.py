"""Apply schema migrations once each, in order, recording them in `schema_migrations`.

Every statement is idempotent (`IF NOT EXISTS`), so two processes migrating at the same time
(processor and API starting together) cannot break the schema; the version table only saves work.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mcp_sentinel.storage import rollups
from mcp_sentinel.storage.client import validate_database
from mcp_sentinel.storage.schema import (
    EVENTS_TABLE,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    ROLLUP_TABLE,
    SESSIONS_TABLE,
    TOOL_SESSIONS_TABLE,
    TOTALS_TABLE,
    USAGE_TABLES,
    Migration,
)


def applied_versions(client: Any, database: str) -> list[int]:
    """Versions recorded in `<db>.schema_migrations`, ascending ([] before the first run)."""
    db = validate_database(database)
    exists = client.query(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": db, "t": MIGRATIONS_TABLE},
    ).result_rows[0][0]
    if not exists:
        return []
    rows = client.query(f"SELECT DISTINCT version FROM {db}.{MIGRATIONS_TABLE} FINAL ORDER BY version").result_rows
    return [int(r[0]) for r in rows]


DEFAULT_RETENTION_DAYS = 90


def migrate(
    client: Any, database: str, *, retention_days: int | None = 90, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Create the database and apply pending migrations; returns the versions applied by this call.

    Also brings the events TTL in line with `retention_days` when it changed since creation.
    `retention_days=None` leaves an existing TTL alone (readers such as the API migrate too, but
    only the writer's configuration owns retention).
    """
    db = validate_database(database)
    keep_ttl = retention_days is None
    if retention_days is None:
        retention_days = DEFAULT_RETENTION_DAYS
    if retention_days < 1:
        raise ValueError("retention_days must be positive")
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = set(applied_versions(client, db))
    applied: list[int] = []
    for mig in sorted(migrations, key=lambda m: m.version):
        if mig.version in done:
            continue
        for stmt in mig.statements:
            # mutations_sync: `MATERIALIZE PROJECTION` on an existing table finishes before the
            # migration is recorded, so readers never rely on a half-built projection.
            client.command(stmt.format(db=db, retention_days=int(retention_days)), settings={"mutations_sync": 2})
        client.insert(f"{db}.{MIGRATIONS_TABLE}", [[mig.version, mig.name]], column_names=["version", "name"])
        applied.append(mig.version)
    if not keep_ttl:
        apply_retention(client, db, retention_days)
    if {2, 3, 4} & set(applied) and not keep_ttl:
        # Backfill: roll up every closed hour and day of the events already stored. Only the
        # writer does it (minutes at 10M events); a reader's start-up must not wait for it, and
        # until it is done reads stay exact, reading the raw table. The processor's periodic
        # sealing also picks up whatever this did not finish.
        rollups.seal_pending(client, db)
    return applied


def apply_retention(client: Any, database: str, retention_days: int) -> bool:
    """Set the events TTL to `retention_days` if it differs; True when it was changed."""
    db = validate_database(database)
    create = client.query(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": db, "t": EVENTS_TABLE},
    ).result_rows
    if not create:
        return False
    match = re.search(r"TTL .*?(?:INTERVAL (\d+) DAY|toIntervalDay\((\d+)\))", create[0][0])
    if match and int(match.group(1) or match.group(2)) == retention_days:
        return False
    client.command(
        f"ALTER TABLE {db}.{EVENTS_TABLE} MODIFY TTL toDateTime(timestamp) + INTERVAL {int(retention_days)} DAY"
    )
    # Rollups outlive their events by a day.
    for table in (ROLLUP_TABLE, SESSIONS_TABLE, TOTALS_TABLE, TOOL_SESSIONS_TABLE, *USAGE_TABLES):
        exists = client.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": db, "t": table},
        ).result_rows[0][0]
        if exists:
            client.command(
                f"ALTER TABLE {db}.{table} MODIFY TTL bucket + INTERVAL {int(retention_days)} DAY + INTERVAL 1 DAY"
            )
    return True
