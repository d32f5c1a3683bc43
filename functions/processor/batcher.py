"""Micro-batching: concurrent deliveries share one INSERT, and each waits for its own rows.

A delivery enqueues its events and awaits a future. A single flusher task takes up to
`max_events` queued events (after waiting at most `max_wait` for more to arrive), writes them in
one call on a worker thread, and resolves every delivery's future with the outcome. A failure
fails exactly the deliveries in that batch; nothing is acknowledged before it is stored.

Under load (`busy_wait`): senders deliver in a closed loop (a KafkaSource sends a partition's
next batch once the previous one is acknowledged), so the deliveries an INSERT just answered are
about to come back. When the first of them queues within `busy_wait` of an INSERT's end, the
next INSERT waits for as many deliveries as were in flight then (those it stored plus those
queued meanwhile), or a full `max_events`, as long as each arrives within `busy_wait` of the
previous one. Without it the in-flight deliveries split into alternating small INSERTs, and an
INSERT's fixed cost (~20 ms on the embedded server) dwarfs its per-row cost at a few thousand
rows. A delivery arriving later than that (an idle writer) is written at once.

`groups` = 2 waits for half of them instead: the in-flight deliveries settle into two
alternating INSERTs, so one group is decoded (this process's CPU) while the other is inserted
(ClickHouse's), at twice the INSERTs of `groups` = 1, which does the two one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Pending(Generic[T]):
    items: Sequence[T]
    future: asyncio.Future[Any]
    meta: Any = None


@dataclass
class BatchStats:
    """Observed by metrics: current backlog and whether intake is paused."""

    pending_events: int = 0
    paused: bool = False
    pause_transitions: int = 0
    on_pause_change: list[Callable[[bool], None]] = field(default_factory=list)


class MicroBatcher(Generic[T, R]):
    """Collects submissions into batches for `flush(groups, metas)` (run on a thread).

    `flush` gets each delivery's items as one group and returns one outcome per group: a result,
    or an exception instance that fails just that delivery.
    """

    def __init__(
        self,
        flush: Callable[[list[Sequence[T]], list[Any]], Sequence[R | BaseException]],
        *,
        max_events: int,
        max_wait: float,
        max_pending: int,
        busy_wait: float = 0.0,
        groups: int = 1,
    ) -> None:
        self._flush = flush
        self.busy_wait = busy_wait
        if groups < 1:
            raise ValueError("groups must be >= 1")
        self.groups = groups
        self.max_events = max_events
        self.max_wait = max_wait
        self.max_pending = max_pending
        self._queue: list[_Pending[T]] = []
        self._wakeup = asyncio.Event()
        self._room = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.stats = BatchStats()
        # The last INSERT: when it ended (loop time) and how many deliveries were in flight then.
        self._last_end = float("-inf")
        self._last_deliveries = 0
        self._last_arrival = float("-inf")  # when the newest delivery queued (loop time)

    def start(self) -> None:
        """Start the flusher task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Flush what is queued, then stop."""
        if self._task is None:
            return
        task, self._task = self._task, None
        while self._queue:
            await self._flush_once()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def _set_paused(self, paused: bool) -> None:
        if paused != self.stats.paused:
            self.stats.paused = paused
            if paused:
                self.stats.pause_transitions += 1
            for cb in self.stats.on_pause_change:
                cb(paused)

    async def submit(self, items: Sequence[T], meta: Any = None) -> R:
        """Queue `items` and return the result of the batch that stored them (or raise its error)."""
        async with self._room:
            if self.stats.pending_events + len(items) > self.max_pending and self.stats.pending_events:
                self._set_paused(True)
                await self._room.wait_for(lambda: self.stats.pending_events + len(items) <= self.max_pending
                                          or not self.stats.pending_events)  # fmt: skip
                self._set_paused(False)
            fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._queue.append(_Pending(items, fut, meta))
            self.stats.pending_events += len(items)
            self._last_arrival = asyncio.get_running_loop().time()
        self._wakeup.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.max_wait > 0:
                await self._fill(asyncio.get_running_loop().time() + self.max_wait)
            while self._queue:
                if self.busy_wait > 0 and asyncio.get_running_loop().time() < self._last_end + self.busy_wait:
                    # The closed loop (module docstring): wait for the deliveries just answered.
                    await self._fill(0.0, -(-self._last_deliveries // self.groups))
                await self._flush_once()

    async def _fill(self, deadline: float, deliveries: int = 0) -> None:
        """Wait for `max_events` queued events until loop time `deadline`.

        With `deliveries`: wait for that many queued deliveries instead, for as long as the
        previous one arrived (or the last INSERT ended) less than `busy_wait` ago: each returning
        delivery is decoded before it queues, and that takes longer on a loaded machine.
        """
        loop = asyncio.get_running_loop()
        while sum(len(p.items) for p in self._queue) < self.max_events and not (
            deliveries and len(self._queue) >= deliveries
        ):
            if deliveries:
                deadline = max(self._last_end, self._last_arrival) + self.busy_wait
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            self._wakeup.clear()

    async def _flush_once(self) -> None:
        """Write the next batch and settle its deliveries."""
        batch: list[_Pending[T]] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0].items) <= self.max_events):
            p = self._queue.pop(0)
            batch.append(p)
            count += len(p.items)
        groups = [p.items for p in batch]
        metas = [p.meta for p in batch]
        try:
            outcomes: Sequence[Any] = await asyncio.to_thread(self._flush, groups, metas)
        except Exception as exc:  # the batch's deliveries each get the error; the flusher lives on
            outcomes = [exc] * len(batch)
        for p, outcome in zip(batch, outcomes, strict=True):
            if p.future.done():
                continue
            if isinstance(outcome, BaseException):
                p.future.set_exception(outcome)
            else:
                p.future.set_result(outcome)
        self._last_end = asyncio.get_running_loop().time()
        # In flight: the deliveries just answered, which come back, plus those that queued meanwhile.
        self._last_deliveries = len(batch) + len(self._queue)
        async with self._room:
            self.stats.pending_events -= count
            self._room.notify_all()
