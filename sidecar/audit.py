"""Loss-free audit delivery: an append-only on-disk spool and an in-order batch sender.

Every event is written to the current segment file (one compact CloudEvent JSON per line,
a single `write(2)` on an O_APPEND descriptor, so a process crash cannot lose it) before the
request path moves on; a background task ships batches from a committed cursor and advances
the cursor only after ingest answers 2xx. Event ids are uuid4s fixed at creation, so retries
and restart replays resend the same ids and the ingest side deduplicates them.

Upstream (§4.9, §11.21) kept 256 events in memory with no retry; here ingest being down only
grows the spool, up to `max_bytes`, after which drops are counted explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

log = logging.getLogger("sidecar.audit")

SEGMENT_BYTES = 4 * 1024 * 1024
_SEG_PREFIX = "seg-"
_SEG_SUFFIX = ".jsonl"

# 403 answers of ingest that name the events, not the credential: this credential may never write
# them, so resending is pointless (functions/ingest/app.py). Every other 401/403 is a credential the
# operator fixes (Secret missing, rotated, unbound): the events are good and must wait for it.
EVENT_REFUSALS = frozenset({"binding_mismatch", "source_not_allowed"})


@dataclass
class AuditCounters:
    """Plain counters the metrics module exports (kept here so the spool works without Prometheus)."""

    spooled: int = 0
    sent: int = 0
    replayed: int = 0
    dropped_full: int = 0
    quarantined: int = 0
    dropped_corrupt: int = 0
    credential_refused: int = 0  # batches ingest refused for the credential (401, or 403 not about events)
    depth: int = 0


def _seg_name(seq: int) -> str:
    return f"{_SEG_PREFIX}{seq:012d}{_SEG_SUFFIX}"


def _seg_seq(path: Path) -> int:
    return int(path.name[len(_SEG_PREFIX) : -len(_SEG_SUFFIX)])


class AuditSpool:
    """Append-only segment files plus a committed cursor `(segment, byte offset)`."""

    def __init__(self, directory: str | Path, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.counters = AuditCounters()
        self._lock = threading.Lock()
        self._cursor_path = self.dir / "cursor"
        segs = self.segments()
        self.cursor_seq, self.cursor_off = self._read_cursor(segs)
        # Never append to a segment a previous process may have left with a torn tail.
        self.first_own_seq = (_seg_seq(segs[-1]) + 1) if segs else 1
        self.write_seq = self.first_own_seq
        self._fd = self._open_segment(self.write_seq)
        self._write_off = 0
        self.bytes_on_disk = sum(p.stat().st_size for p in segs) - self._committed_bytes_in(segs)
        self.counters.depth = self._count_backlog(segs)
        self._dirty = False
        self.last_batch_replayed = 0

    # -- files ---------------------------------------------------------------------------------

    def segments(self) -> list[Path]:
        """Segment files in order."""
        return sorted(self.dir.glob(f"{_SEG_PREFIX}*{_SEG_SUFFIX}"), key=_seg_seq)

    def _open_segment(self, seq: int) -> int:
        return os.open(self.dir / _seg_name(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _read_cursor(self, segs: list[Path]) -> tuple[int, int]:
        try:
            seq_s, off_s = self._cursor_path.read_text().split()
            return int(seq_s), int(off_s)
        except (OSError, ValueError):
            return (_seg_seq(segs[0]) if segs else 1), 0

    def _committed_bytes_in(self, segs: list[Path]) -> int:
        return sum(self.cursor_off for p in segs if _seg_seq(p) == self.cursor_seq)

    def _count_backlog(self, segs: list[Path]) -> int:
        n = 0
        for p in segs:
            seq = _seg_seq(p)
            if seq < self.cursor_seq:
                continue
            with open(p, "rb") as fh:
                if seq == self.cursor_seq:
                    fh.seek(self.cursor_off)
                n += fh.read().count(b"\n")
        return n

    # -- writing (request path) ----------------------------------------------------------------

    def append_line(self, line: bytes) -> bool:
        """Durably append one encoded event line (`mcp_sentinel.cloudevents_line`); False when the spool is full."""
        with self._lock:
            if self.bytes_on_disk + len(line) > self.max_bytes:
                self.counters.dropped_full += 1
                if self.counters.dropped_full & (self.counters.dropped_full - 1) == 0:
                    log.error(
                        "audit spool full (%d bytes): %d events dropped", self.max_bytes, self.counters.dropped_full
                    )
                return False
            if self._write_off >= SEGMENT_BYTES:
                os.close(self._fd)
                self.write_seq += 1
                self._fd = self._open_segment(self.write_seq)
                self._write_off = 0
            os.write(self._fd, line)
            self._write_off += len(line)
            self.bytes_on_disk += len(line)
            self.counters.spooled += 1
            self.counters.depth += 1
            self._dirty = True
        return True

    def sync(self) -> None:
        """fsync the current segment (group commit, called off the request path)."""
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            fd = self._fd
        with contextlib.suppress(OSError):
            os.fsync(fd)

    # -- reading (sender) ----------------------------------------------------------------------

    def read_batch(self, limit: int) -> tuple[list[bytes], tuple[int, int]]:
        """Up to `limit` uncommitted lines from the cursor, and the cursor position after them."""
        lines: list[bytes] = []
        self.last_batch_replayed = 0  # how many of these lines an earlier process wrote
        seq, off = self.cursor_seq, self.cursor_off
        while len(lines) < limit:
            path = self.dir / _seg_name(seq)
            if not path.exists():
                if seq < self.write_seq:
                    seq, off = seq + 1, 0
                    continue
                break
            with open(path, "rb") as fh:
                fh.seek(off)
                chunk = fh.read(1024 * 1024)
            pos = 0
            before = len(lines)
            while len(lines) < limit:
                nl = chunk.find(b"\n", pos)
                if nl < 0:
                    break
                lines.append(chunk[pos:nl])
                pos = nl + 1
            off += pos
            if seq < self.first_own_seq:
                self.last_batch_replayed += len(lines) - before
            if len(lines) >= limit:
                break
            eof = len(chunk) < 1024 * 1024
            if not eof and pos > 0:
                continue  # more complete lines further on in this segment
            if seq >= self.write_seq:
                break  # caught up with the writer
            if pos < len(chunk):
                self.counters.dropped_corrupt += 1  # torn tail left by a crashed writer
            seq, off = seq + 1, 0
        return lines, (seq, off)

    def commit(self, position: tuple[int, int], count: int, nbytes: int) -> None:
        """Advance the cursor after a 2xx; delete fully shipped segments."""
        seq, off = position
        tmp = self._cursor_path.with_suffix(".tmp")
        tmp.write_text(f"{seq} {off}\n")
        os.replace(tmp, self._cursor_path)
        old = self.cursor_seq
        self.cursor_seq, self.cursor_off = seq, off
        with self._lock:
            self.bytes_on_disk = max(0, self.bytes_on_disk - nbytes)
            self.counters.depth = max(0, self.counters.depth - count)
        for s in range(old, seq):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / _seg_name(s)).unlink()

    def quarantine(self, lines: list[bytes], reason: str) -> None:
        """Keep events ingest refuses one by one in `rejected.jsonl` (with the reason) for an operator."""
        with open(self.dir / "rejected.jsonl", "ab") as fh:
            for line in lines:
                fh.write(b'{"reason":' + json.dumps(reason).encode() + b',"event":' + line + b"}\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.error("ingest refused %d audit event(s) (%s); kept in %s", len(lines), reason, self.dir / "rejected.jsonl")

    def close(self) -> None:
        """Flush and close the current segment."""
        self.sync()
        with contextlib.suppress(OSError):
            os.close(self._fd)


class AuditSender:
    """Ships spooled events to ingest in order, retrying with backoff until 2xx."""

    def __init__(
        self,
        spool: AuditSpool,
        url: str,
        *,
        api_key: str = "",
        batch_size: int = 500,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        self.spool = spool
        self.url = url
        self.batch_size = batch_size
        self.headers = {"Content-Type": "application/cloudevents-batch+json"}
        if api_key:
            self.headers["x-api-key"] = api_key
        self._wake = asyncio.Event()
        self._session_factory = session_factory or (
            lambda: aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10, connect=3))
        )
        self.last_error = ""

    def notify(self) -> None:
        """Wake the sender (called after each append)."""
        self._wake.set()

    async def run(self) -> None:
        """Send forever (cancel to stop); survives ingest outages by retrying the same batch.

        A batch ingest refuses as a whole (400/413/422), or answers by resetting the connection, is
        bisected: the halves are retried so an oversized batch still goes through and a poison event
        is isolated. A single event ingest
        refuses is moved to `rejected.jsonl` in the spool folder (kept, counted), never discarded.
        """
        backoff = 0.1
        limit = self.batch_size
        async with self._session_factory() as session:
            while True:
                lines, pos = self.spool.read_batch(limit)
                if not lines:
                    if pos != (self.spool.cursor_seq, self.spool.cursor_off):
                        self.spool.commit(pos, 0, 0)  # skipped empty/torn segments
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                    continue
                outcome = await self._post(session, lines)
                if outcome == "retry":
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.1
                if outcome == "split" or (outcome == "rejected" and len(lines) > 1):
                    limit = max(1, len(lines) // 2)
                    continue
                nbytes = sum(len(x) + 1 for x in lines)
                replayed = self.spool.last_batch_replayed
                if outcome == "rejected":
                    self.spool.quarantine(lines, self.last_error)
                self.spool.commit(pos, len(lines), nbytes)
                if outcome == "sent":
                    self.spool.counters.sent += len(lines)
                    self.spool.counters.replayed += replayed
                    limit = min(self.batch_size, limit * 2)
                else:
                    self.spool.counters.quarantined += len(lines)

    async def _post(self, session: aiohttp.ClientSession, lines: list[bytes]) -> str:
        body = b"[" + b",".join(lines) + b"]"
        headers = dict(self.headers)
        with contextlib.suppress(ValueError, KeyError, TypeError):
            tp = json.loads(lines[0]).get("traceparent")
            if tp:
                headers["traceparent"] = tp
        try:
            async with session.post(self.url, data=body, headers=headers) as resp:
                answer = await resp.read()
                if 200 <= resp.status < 300:
                    self.last_error = ""
                    return "sent"
                self.last_error = f"ingest answered {resp.status}"
                if resp.status in (400, 413, 422):
                    # The batch itself is unacceptable; resending it unchanged would block every later event.
                    log.warning("ingest refused %d audit events with %d", len(lines), resp.status)
                    return "rejected"
                if resp.status in (401, 403):
                    return self._refused(resp.status, answer, len(lines))
                return "retry"
        except aiohttp.ClientConnectorError as exc:  # never reached ingest: an outage, retry the same batch
            self.last_error = f"ingest unreachable: {exc.__class__.__name__}: {exc}"
            return "retry"
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as exc:
            # Connected, then reset or closed mid-exchange: what a server (or proxy) that refuses an
            # oversized body without reading it looks like to the sender. Resending the same batch
            # would be refused the same way forever, so a batch is split (halves until one event,
            # which is then retried like an outage; the limit grows back after each success).
            self.last_error = f"ingest closed the connection: {exc.__class__.__name__}: {exc}"
            if len(lines) > 1:
                log.warning("ingest reset the connection on a %d-event batch (%d bytes); splitting it",
                            len(lines), len(body))
                return "split"
            return "retry"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.last_error = f"ingest unreachable: {exc.__class__.__name__}: {exc}"
            return "retry"


    def _refused(self, status: int, body: bytes, count: int) -> str:
        """401/403: `rejected` when ingest names the events (bisected, then quarantined), else `retry`.

        Anything not a JSON error naming a per-event refusal counts as a credential problem: keeping
        the events (and alerting) is the fail-safe side, since a quarantined event is never delivered.
        """
        error = ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            error = str(json.loads(body).get("error", ""))
        self.last_error = f"ingest answered {status} {error}".rstrip()
        if status == 403 and error in EVENT_REFUSALS:
            log.warning("ingest refused %d audit events: %s", count, error)
            return "rejected"
        if self.spool.counters.credential_refused == 0 or self.spool.counters.credential_refused % 100 == 0:
            log.error("ingest refused the audit credential (%s); events stay spooled until it is fixed",
                      self.last_error)
        self.spool.counters.credential_refused += 1
        return "retry"


async def sync_loop(spool: AuditSpool, interval: float = 0.2) -> None:
    """Group-commit fsync of the spool (cancel to stop)."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(spool.sync)
