"""`EventWriter`: idempotent, batched inserts of audit events.

One call writes one batch as one INSERT (one part), so callers batch explicitly: the processor
collects concurrent deliveries for a few milliseconds and writes them together. Ids already
stored are skipped before inserting (counted as duplicates); a race between two writers with the
same id is still harmless because the table is a ReplacingMergeTree read with `FINAL`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mcp_sentinel.storage.client import validate_database
from mcp_sentinel.storage.schema import EVENTS_TABLE, INSERT_COLUMNS


@dataclass(frozen=True)
class EventRecord:
    """One row to store. `payload` is the JSON text kept verbatim; `timestamp` is timezone-aware."""

    event_id: str
    timestamp: datetime
    trace_id: str
    source: str
    event_type: str
    payload: str

    @classmethod
    def from_envelope(cls, env: Any) -> EventRecord:
        """Build from an `mcp_sentinel.envelope.Envelope` (duck-typed to keep this module light)."""
        payload: Mapping[str, Any] = env.payload
        return cls(
            event_id=env.id,
            timestamp=env.timestamp,
            trace_id=env.trace_id,
            source=env.source,
            event_type=env.event_type,
            payload=json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False),
        )


@dataclass(frozen=True)
class WriteResult:
    """What a write did: ids inserted now, and ids that were already stored (or repeated in the batch)."""

    inserted: tuple[str, ...]
    duplicates: tuple[str, ...]


class EventWriter:
    """Writes batches of `EventRecord` into `<database>.events`."""

    def __init__(self, client: Any, database: str = "mcp") -> None:
        self.client = client
        self.database = validate_database(database)
        self.table = f"{self.database}.{EVENTS_TABLE}"

    def existing_ids(self, records: Sequence[EventRecord]) -> set[str]:
        """Ids among `records` already stored, whatever timestamp they were stored with.

        Not bounded by time: a producer that re-sends an id with another timestamp must still not
        create a second row (the sort key alone would not collapse it). The `event_id` bloom
        filter keeps this to the granules that may hold the ids.
        """
        if not records:
            return set()
        rows = self.client.query(
            f"SELECT DISTINCT event_id FROM {self.table} WHERE event_id IN {{ids:Array(String)}}",
            parameters={"ids": [r.event_id for r in records]},
        ).result_rows
        return {str(r[0]) for r in rows}

    def write(self, records: Iterable[EventRecord]) -> WriteResult:
        """Insert the records whose ids are new, as one INSERT; returns what was inserted and skipped."""
        unique: dict[str, EventRecord] = {}
        duplicates: list[str] = []
        for rec in records:
            if rec.event_id in unique:
                duplicates.append(rec.event_id)
            else:
                unique[rec.event_id] = rec
        if not unique:
            return WriteResult((), tuple(duplicates))
        stored = self.existing_ids(list(unique.values()))
        fresh = [r for r in unique.values() if r.event_id not in stored]
        duplicates.extend(i for i in unique if i in stored)
        if fresh:
            self.client.insert(
                self.table,
                [[r.event_id, r.timestamp, r.trace_id, r.source, r.event_type, r.payload] for r in fresh],
                column_names=list(INSERT_COLUMNS),
            )
        return WriteResult(tuple(r.event_id for r in fresh), tuple(duplicates))
