"""Garbage-collector settings for the throughput-bound pipeline processes (processor, dispatcher)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Freeze start-up objects and collect the youngest generation every 50k allocations, not 700.

    Each 1,000-event delivery (or poll) allocates tens of thousands of short-lived objects that
    reference counting frees; at the default threshold the cyclic collector ran ~20 times per
    delivery and its full passes walked every framework object: it took most of the processor's
    CPU under load (measured in bench/processor_throughput.py). Cycles are still collected, just in
    larger steps. Call it once, after the app is built and before serving.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
