"""A/B of the API read paths: this tree's query functions against an older revision's, interleaved.

Single runs minutes apart cannot be compared on a shared machine (the load average moves the
figures 3-10x), so every read path runs old, new, old, new, … against the same database and the
medians are compared. The older `mcp_sentinel/storage/queries.py` is loaded from git (it uses
this tree's rollups module, whose functions it calls are unchanged; since `usage` moved to
`storage/usage.py`, that file is loaded too). `--no-skip-indexes` adds
the event searches with `use_skip_indexes=0`, to measure what the skip indexes buy.

    python -m bench.scale_ab --url http://127.0.0.1:8123 --database s10m --against 842356e
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.scale import _pct, read_paths
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.queries import EventQueries


def _load(rev: str, path: str, name: str, replace: dict[str, str]) -> types.ModuleType:
    src = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True).stdout
    for old, new in replace.items():
        src = src.replace(old, new)
    mod = types.ModuleType(name)
    sys.modules[mod.__name__] = mod  # dataclasses resolve their module by name
    exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
    return mod


def load_queries(rev: str) -> types.ModuleType:
    """`mcp_sentinel/storage/queries.py` as of `rev`, as a module of its own, with that revision's
    `usage` as its attribute (from `storage/usage.py` once it was split out, importing the old queries)."""
    mod = _load(rev, "mcp_sentinel/storage/queries.py", f"queries_{rev}", {})
    has_usage = subprocess.run(["git", "cat-file", "-e", f"{rev}:mcp_sentinel/storage/usage.py"],
                               capture_output=True, check=False).returncode == 0  # fmt: skip
    if has_usage:
        usage_mod = _load(rev, "mcp_sentinel/storage/usage.py", f"usage_{rev}",
                          {"mcp_sentinel.storage.queries import": f"queries_{rev} import"})  # fmt: skip
        mod.__dict__["usage"] = usage_mod.usage
    return mod


def _ms(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    """Run every read path old/new interleaved `--reps` times; print medians."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--database", required=True)
    ap.add_argument("--against", required=True, help="git revision whose queries.py is the baseline")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-skip-indexes", action="store_true")
    ap.add_argument(
        "--match", "--only",
        dest="match",
        action="append",
        default=[],
        help="only read paths whose name contains this text (repeatable; default: all)",
    )
    a = ap.parse_args()
    client = clickhouse_client_from_url(a.url, a.database, send_receive_timeout=3600)
    old_mod = load_queries(a.against)
    # The old module's functions take its own EventQueries; read_paths' lambdas only call methods
    # and `usage`, so each side gets its own `usage` through this shim.
    import mcp_sentinel.storage.usage as new_mod

    sides: dict[str, tuple[Any, types.ModuleType]] = {
        "old": (old_mod.EventQueries(client, a.database), old_mod),
        "new": (EventQueries(client, a.database), new_mod),
    }
    print(f"load average at start: {os.getloadavg()[0]:.1f} (2 cores); baseline {a.against}")
    print("| read path | before p50 / p95 ms | after p50 / p95 ms | speed-up (p50) |\n|---|---|---|---|")
    for name, call, _aggregate in read_paths(client, a.database):
        if a.match and not any(m in name for m in a.match):
            continue
        times: dict[str, list[float]] = {"old": [], "new": []}
        for side in ("old", "new"):  # warm both
            q, mod = sides[side]
            _with_usage(mod, partial(call, q))
        for _ in range(a.reps):
            for side in ("old", "new"):
                q, mod = sides[side]
                times[side].append(_ms(partial(_with_usage, mod, partial(call, q))))
        o, n = statistics.median(times["old"]), statistics.median(times["new"])
        op, np_ = _pct(times["old"], 0.95), _pct(times["new"], 0.95)
        print(f"| {name} | {o:,.0f} / {op:,.0f} | {n:,.0f} / {np_:,.0f} | ×{o / n:.1f} |", flush=True)
    if a.no_skip_indexes:
        plain = clickhouse_client_from_url(a.url, a.database, settings={"use_skip_indexes": 0})
        q_on, q_off = EventQueries(client, a.database), EventQueries(plain, a.database)
        print("\n| event search | skip indexes on p50 ms | off p50 ms |\n|---|---|---|")
        for name, call, aggregate in read_paths(client, a.database):
            if aggregate:
                continue
            on = [_ms(partial(call, q_on)) for _ in range(a.reps)]
            off = [_ms(partial(call, q_off)) for _ in range(a.reps)]
            print(f"| {name} | {statistics.median(on):,.0f} | {statistics.median(off):,.0f} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


def _with_usage(mod: types.ModuleType, fn: Callable[[], Any]) -> Any:
    """Run `fn` with `bench.scale.usage` pointing at `mod.usage` (read_paths' lambdas call it)."""
    import bench.scale as scale

    saved = scale.__dict__["usage"]
    # Each side runs its own revision's usage() (load_queries attaches it from storage/usage.py).
    scale.__dict__["usage"] = getattr(mod, "usage", saved)
    try:
        return fn()
    finally:
        scale.__dict__["usage"] = saved


if __name__ == "__main__":
    main()
