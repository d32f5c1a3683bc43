"""The local broker store's per-request cost against the number of stored batches (issue 17, item 3).

tansu lists a partition's whole `records/` prefix on every fetch and then GETs the batches it
needs, so the store's LIST and GET latency at 1k, 10k and 100k stored objects is what decides
whether fetches keep up as data accumulates. Each size gets a fresh `s3` part (the real server
process, started through the Supervisor) over a folder seeded on disk with that many tansu-shaped
batch objects in one partition; then, over HTTP with one keep-alive client:

* `LIST page`: one ListObjectsV2 page (max-keys 1000) at a random start-after inside the partition;
* `LIST tail`: the page after the newest batches (what a caught-up reader's listing ends with);
* `GET`: one batch at a random offset; `PUT`: a new batch with If-None-Match: * (tansu's create);
* `LIST all`: every page of the prefix, i.e. what one tansu fetch costs - this one grows with the
  data by nature (retention is what bounds it: localstack/s3_server/retention.py).

The baseline is the same request at 1k objects in the same run: a per-request cost that does not
grow shows as ratios near x1.0 at 10k and 100k.
Run: `python -m bench.broker_list [sizes...] [--repeat N]`.
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from localstack.config import Ports, StackConfig
from localstack.parts import s3 as s3_part
from localstack.supervisor import Supervisor

PREFIX = "clusters/tansu_cluster/topics/mcp.events/partitions/0000000002/records/"


def _seed(root: Path, n: int) -> None:
    folder = root / "s3" / "tansu" / PREFIX
    folder.mkdir(parents=True)
    body = b"b" * 300
    for o in range(n):
        (folder / f"{o:020d}.batch").write_bytes(body)


def _timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def _measure(n: int, repeat: int) -> dict[str, tuple[float, float]]:
    data = Path(tempfile.mkdtemp(prefix="bench-broker-list-"))
    try:
        _seed(data, n)
        cfg = StackConfig(data_dir=data, ports=Ports.free())
        with Supervisor(cfg) as sup:
            t0 = time.perf_counter()
            sup.start_all(s3_part.components(cfg))
            startup = (time.perf_counter() - t0) * 1000
            rng = random.Random(n)
            with httpx.Client(base_url=cfg.url("s3"), timeout=120) as c:
                def listing(after: str) -> None:
                    params = {"list-type": "2", "prefix": PREFIX, "start-after": after}
                    c.get("/tansu", params=params).raise_for_status()

                def list_page() -> None:  # always a full page of 1,000 (or 999 at 1k objects)
                    listing(f"{PREFIX}{rng.randrange(max(1, n - 1000)):020d}.batch")

                def list_tail() -> None:
                    listing(f"{PREFIX}{n - 5:020d}.batch")

                def get() -> None:
                    c.get(f"/tansu/{PREFIX}{rng.randrange(n):020d}.batch").raise_for_status()

                counter = iter(range(n, 10 * n + 10_000_000))

                def put() -> None:
                    r = c.put(f"/tansu/{PREFIX}{next(counter):020d}.batch", content=b"b" * 300,
                              headers={"If-None-Match": "*"})
                    r.raise_for_status()

                def list_all() -> None:
                    token = None
                    while True:
                        params = {"list-type": "2", "prefix": PREFIX}
                        if token:
                            params["continuation-token"] = token
                        r = c.get("/tansu", params=params)
                        r.raise_for_status()
                        if b"<IsTruncated>true" not in r.content:
                            return
                        token = r.text.split("<NextContinuationToken>")[1].split("<")[0]

                list_all()  # a fresh start reads each object once for its ETag: here, not in the samples
                out = {"LIST page": _timed(list_page, repeat), "LIST tail": _timed(list_tail, repeat),
                       "GET": _timed(get, repeat), "PUT": _timed(put, repeat),
                       "LIST all": _timed(list_all, max(3, repeat // 20))}
                out["start-up"] = (startup, startup)
                stats = c.get("/_sentinel/stats")  # absent on the store this one replaced (for before/after runs)
                scanned = stats.json()["buckets"]["tansu"]["list_scanned_max"] if stats.status_code == 200 else -1
                out["scanned max"] = (float(scanned), float(scanned))
                return out
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main(sizes: tuple[int, ...] = (1_000, 10_000, 100_000), repeat: int = 200) -> None:
    """Print p50/p95 ms per request kind and size, with the ratio of each p50 against the smallest size."""
    results = {n: _measure(n, repeat) for n in sizes}
    base = results[sizes[0]]
    print(f"local broker store (`s3` part), objects in one partition's records/, {repeat} requests each, ms")
    for kind in ("LIST page", "LIST tail", "GET", "PUT", "LIST all", "start-up", "scanned max"):
        cells = []
        for n in sizes:
            p50, p95 = results[n][kind]
            ratio = p50 / base[kind][0] if base[kind][0] else float("nan")
            cells.append(f"{n:>7,}: p50 {p50:8.2f} p95 {p95:8.2f} (x{ratio:5.1f})" if kind != "scanned max"
                         else f"{n:>7,}: {p50:8.0f} keys")
        print(f"  {kind:12s} " + " | ".join(cells))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rep = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 200
    if "--repeat" in sys.argv:
        args.remove(str(rep))
    main(tuple(int(a) for a in args) or (1_000, 10_000, 100_000), rep)
