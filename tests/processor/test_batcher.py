"""The micro-batcher's busy wait: full INSERTs while senders run a closed loop, none added when idle.

The flush function stands in for the INSERT with a fixed duration on the worker thread, as the
real one blocks on ClickHouse; batch sizes are what is asserted, not timings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from functions.processor.batcher import MicroBatcher

CLIENTS = 4
PER_DELIVERY = 2
ROUNDS = 6


async def _closed_loop(busy_wait: float) -> list[int]:
    """CLIENTS senders, each sending its next delivery as soon as the previous one is stored."""
    sizes: list[int] = []

    def flush(groups: list[Sequence[int]], _metas: list[Any]) -> list[int]:
        sizes.append(sum(len(g) for g in groups))
        time.sleep(0.2)  # the INSERT
        return [len(g) for g in groups]

    batcher: MicroBatcher[int, int] = MicroBatcher(
        flush, max_events=CLIENTS * PER_DELIVERY, max_wait=0, max_pending=1000, busy_wait=busy_wait
    )
    batcher.start()

    async def client(i: int) -> None:
        await asyncio.sleep(0.05 * i)  # arrive one after another, as deliveries do
        for _ in range(ROUNDS):
            await batcher.submit([i] * PER_DELIVERY)

    try:
        await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(CLIENTS))), 120)
    finally:
        await batcher.stop()
    assert sum(sizes) == CLIENTS * PER_DELIVERY * ROUNDS
    return sizes


async def test_group_commit_alone_splits_the_in_flight_deliveries() -> None:
    sizes = await _closed_loop(busy_wait=0)
    assert any(0 < s < CLIENTS * PER_DELIVERY for s in sizes[1:-1]), sizes


async def test_busy_wait_fills_back_to_back_inserts() -> None:
    sizes = await _closed_loop(busy_wait=2.0)
    full = CLIENTS * PER_DELIVERY
    # The first INSERT takes the first delivery alone (the writer was idle); once INSERTs run back to
    # back every batch waits for the deliveries just answered, so they are full (the wait ends then).
    assert sizes[0] == PER_DELIVERY
    assert sizes.count(full) >= ROUNDS - 2, sizes
    assert len(sizes) < len(await _closed_loop(busy_wait=0))


async def test_an_idle_writer_stores_a_lone_delivery_at_once() -> None:
    sizes: list[int] = []

    def flush(groups: list[Sequence[int]], _metas: list[Any]) -> list[int]:
        sizes.append(sum(len(g) for g in groups))
        return [len(g) for g in groups]

    batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_events=100, max_wait=0, max_pending=1000, busy_wait=60)
    batcher.start()
    try:
        for _ in range(3):  # one sender, one delivery at a time: nothing queues during an INSERT
            assert await asyncio.wait_for(batcher.submit([1]), 30) == 1
    finally:
        await batcher.stop()
    assert sizes == [1, 1, 1]


async def _staggered_returns(busy_wait: float, groups: int = 1) -> list[int]:
    """Deliveries answered by one INSERT come back one after another (decoding takes a while)."""
    sizes: list[int] = []

    def flush(groups: list[Sequence[int]], _metas: list[Any]) -> list[int]:
        sizes.append(len(groups))
        time.sleep(0.05)
        return [len(g) for g in groups]

    batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_events=100, max_wait=0, max_pending=1000,
                                                   busy_wait=busy_wait, groups=groups)  # fmt: skip
    batcher.start()

    async def client(i: int) -> None:
        for _ in range(ROUNDS):
            await asyncio.sleep(0.02 * i)
            await batcher.submit([i])

    try:
        await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(CLIENTS))), 120)
    finally:
        await batcher.stop()
    assert sum(sizes) == CLIENTS * ROUNDS
    return sizes


async def test_deliveries_answered_together_come_back_as_one_insert() -> None:
    """The group commit writes the first returning delivery alone and splits the rest; the busy wait does not."""
    sizes = await _staggered_returns(busy_wait=2.0)
    assert sizes.count(CLIENTS) >= ROUNDS - 2, sizes
    assert (await _staggered_returns(busy_wait=0)).count(CLIENTS) < ROUNDS - 2


async def test_two_groups_alternate_half_of_the_deliveries_each() -> None:
    """`groups=2`: each INSERT waits for half of the in-flight deliveries, never fewer, never all at once."""
    sizes = await _staggered_returns(busy_wait=2.0, groups=2)
    steady = sizes[2:-2]
    assert steady and all(s >= CLIENTS // 2 for s in steady), sizes
    assert steady.count(CLIENTS) < len(steady), sizes


def test_groups_must_be_positive() -> None:
    with pytest.raises(ValueError, match="groups"):
        MicroBatcher(lambda g, m: [], max_events=1, max_wait=0, max_pending=1, groups=0)


async def test_busy_wait_ends_at_its_deadline_when_fewer_deliveries_return() -> None:
    sizes: list[int] = []

    def flush(groups: list[Sequence[int]], _metas: list[Any]) -> list[int]:
        sizes.append(len(groups))
        return [len(g) for g in groups]

    batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_events=100, max_wait=0, max_pending=1000, busy_wait=0.3)
    batcher.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(batcher.submit([i]) for i in range(3))), 30)
        assert sizes == [3]  # submitted together before the flusher ran: one INSERT
        t0 = time.monotonic()
        assert await asyncio.wait_for(batcher.submit([9]), 30) == 1  # only one of the three comes back
        waited = time.monotonic() - t0
    finally:
        await batcher.stop()
    assert sizes == [3, 1]
    assert waited < 20  # bounded by busy_wait (0.3 s), generous for a loaded machine


async def test_a_delivery_after_the_busy_wait_is_written_at_once() -> None:
    """Past `busy_wait` since the last INSERT the writer is idle: no wait for the previous batch's senders."""
    sizes: list[int] = []

    def flush(groups: list[Sequence[int]], _metas: list[Any]) -> list[int]:
        sizes.append(len(groups))
        return [len(g) for g in groups]

    batcher: MicroBatcher[int, int] = MicroBatcher(flush, max_events=100, max_wait=0, max_pending=1000, busy_wait=60)
    batcher.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(batcher.submit([i]) for i in range(3))), 30)
        batcher.busy_wait = 0.01  # what 60 s would be after a minute: the last INSERT is long past
        await asyncio.sleep(0.05)
        assert await asyncio.wait_for(batcher.submit([9]), 5) == 1  # would hang 60 s were it waiting
    finally:
        await batcher.stop()
    assert sizes == [3, 1]
