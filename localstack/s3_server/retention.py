"""Retention for the local broker's data: delete batches every consumer group has moved past.

tansu 0.6 on S3 storage never deletes anything: it does not apply `retention.ms`/`retention.bytes`
(topic configs are accepted and ignored) and answers the DeleteRecords API by dropping the
connection (both checked against the shipped binary; docs/decisions/localstack.md, "Broker store"). Its data
would grow forever, and so would the cost of every fetch: tansu lists a partition's whole
`records/` folder on each one. So the store enforces retention itself, the way a Kafka operator
configures it - `retention.ms` (age) and `retention.bytes` (per partition) - with one guard Kafka
does not have: a batch is deleted only when every consumer group that has committed an offset on
its partition has committed past it, so retention never drops a record the audit pipeline has not
delivered (zero loss beats a bounded disk; a stalled consumer therefore holds data back, and the
`objects`/`bytes` figures of `/_sentinel/stats` show it). A partition no group has committed on
(the dead-letter topic, until an operator reads it) is kept whole.

tansu's layout (0.6, `dynostore`), which this module reads and never writes except by deleting
whole batches:

    clusters/<c>/topics/<topic>/partitions/<p:010>/records/<base offset:020>.batch
    clusters/<c>/groups/consumers/<group>/offsets/<topic>/partitions/<p:010>.json   {"offset": N, ...}

A batch's records run from its base offset to the next batch's base offset, so a batch is below a
committed offset C when the *next* batch starts at or before C; the newest batch of a partition is
never deleted. Ages are the objects' write times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from localstack.s3_server.store import FileStore, StoreError

log = logging.getLogger("localstack.s3_server.retention")

_BATCH = ".batch"


@dataclass(frozen=True)
class RetentionPolicy:
    """Kafka's two topic settings (-1 = no limit), applied to every partition, plus how often to sweep."""

    retention_ms: int = -1
    retention_bytes: int = -1
    interval: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.retention_ms >= 0 or self.retention_bytes >= 0


@dataclass
class SweepResult:
    """What one sweep saw and did."""

    partitions: int = 0
    deleted_batches: int = 0
    deleted_bytes: int = 0
    held_by_consumers: int = 0  # batches past retention kept because a group has not committed past them
    unconsumed_partitions: list[str] = field(default_factory=list)


@dataclass
class _Batch:
    key: str
    offset: int
    size: int
    mtime_ns: int


def _committed_offsets(store: FileStore, bucket: str) -> dict[tuple[str, str, int], list[int]]:
    """(cluster, topic, partition) -> the committed offset of every group that has one."""
    out: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for key in store.keys(bucket, "clusters/"):
        parts = key.split("/")
        # clusters/<c>/groups/consumers/<g>/offsets/<topic>/partitions/<p>.json
        if len(parts) != 9 or parts[2:4] != ["groups", "consumers"] or parts[5] != "offsets" \
                or parts[7] != "partitions" or not parts[8].endswith(".json"):
            continue
        try:
            doc = json.loads(store.get(bucket, key)[1])
            offset = int(doc["offset"])
            partition = int(parts[8].removesuffix(".json"))
        except (StoreError, ValueError, KeyError, TypeError):
            # Unreadable: treat the partition as held at offset 0 (delete nothing) rather than guess.
            with contextlib.suppress(ValueError):
                out[(parts[1], parts[6], int(parts[8].removesuffix(".json")))].append(0)
            continue
        out[(parts[1], parts[6], partition)].append(offset)
    return out


def _partitions(store: FileStore, bucket: str) -> dict[tuple[str, str, int], list[_Batch]]:
    """Every partition's batches in offset order."""
    out: dict[tuple[str, str, int], list[_Batch]] = defaultdict(list)
    for key, size, mtime_ns in store.scan(bucket, "clusters/"):
        parts = key.split("/")
        # clusters/<c>/topics/<topic>/partitions/<p>/records/<offset>.batch
        if len(parts) != 8 or parts[2] != "topics" or parts[4] != "partitions" or parts[6] != "records" \
                or not parts[7].endswith(_BATCH):
            continue
        try:
            tp = (parts[1], parts[3], int(parts[5]))
            offset = int(parts[7].removesuffix(_BATCH))
        except ValueError:
            continue
        out[tp].append(_Batch(key, offset, size, mtime_ns))
    for batches in out.values():
        batches.sort(key=lambda b: b.offset)
    return out


def sweep(store: FileStore, bucket: str, policy: RetentionPolicy, now_ns: int | None = None) -> SweepResult:
    """Delete what `policy` allows (see the module docstring); synchronous, on the server's loop thread."""
    result = SweepResult()
    if not policy.enabled or not store.has_bucket(bucket):
        return result
    now_ns = time.time_ns() if now_ns is None else now_ns
    committed = _committed_offsets(store, bucket)
    for tp, batches in _partitions(store, bucket).items():
        result.partitions += 1
        groups = committed.get(tp)
        if not groups:
            result.unconsumed_partitions.append(f"{tp[1]}/{tp[2]}")
            continue
        floor = min(groups)
        total = sum(b.size for b in batches)
        for i, batch in enumerate(batches[:-1]):  # never the newest batch
            old = policy.retention_ms >= 0 and now_ns - batch.mtime_ns > policy.retention_ms * 1_000_000
            big = policy.retention_bytes >= 0 and total > policy.retention_bytes
            if not (old or big):
                break  # batches are in offset (hence write) order: the rest are younger
            if batches[i + 1].offset > floor:
                result.held_by_consumers += len(batches) - 1 - i
                break
            store.delete(bucket, batch.key)
            total -= batch.size
            result.deleted_batches += 1
            result.deleted_bytes += batch.size
    return result
