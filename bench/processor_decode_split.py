"""Python CPU per event left in the processor under each split of the work with ClickHouse (issue 17.5).

In-process, no HTTP and no server: the same 1,000-event batch bodies as `bench:processor`,
each candidate run over all of them, 5 rounds, median µs per event of this process's CPU:
* `today`: what the processor does per event now (decode + validate, rows, RowBinary);
* `split`: what would stay in Python if ClickHouse validated the attributes and derived the
  timestamp and trace id, while Python kept the canonical payload text (parse, payload text,
  the attributes re-serialised for the server);
* `loads+payload`: parse and canonical payload text only (the part the stored bytes need);
* `json.loads` / `orjson.loads`: parsing alone, the floor of any design that parses in Python.
`python -m bench.processor_decode_split [rounds]`; docs/benchmarks.md "Processor ratio, session 7b".
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

import orjson

from bench.processor_throughput import BATCH, make_events
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, decode_http_fields
from mcp_sentinel.gc_tuning import tune_gc
from mcp_sentinel.storage.events import EventRecord, encode_rowbinary, payload_text

BODIES = 20
_HEADERS = {"content-type": BATCH_CONTENT_TYPE}


def today(body: bytes) -> object:
    """The processor's per-event work now."""
    return encode_rowbinary([EventRecord.from_envelope(f) for f in decode_http_fields(_HEADERS, body)])


def split(body: bytes) -> object:
    """What Python would keep if ClickHouse checked the attributes: parse, payload text, attributes."""
    out: list[object] = []
    for item in json.loads(body):
        data = item.get("data")
        out.append(orjson.dumps({k: v for k, v in item.items() if k != "data"}))
        out.append(payload_text(data) if type(data) is dict else "")
    return out


def loads_and_payload(body: bytes) -> object:
    """Parse plus the canonical payload text: what byte-identical stored payloads cost in Python."""
    return [payload_text(item["data"]) for item in json.loads(body)]


CANDIDATES: tuple[tuple[str, Callable[[bytes], object]], ...] = (
    ("today: decode + rows + RowBinary", today),
    ("split: loads + payload text + attributes", split),
    ("loads + payload text", loads_and_payload),
    ("json.loads", json.loads),
    ("orjson.loads", orjson.loads),
)


def main() -> None:
    """Print the median and every round of each candidate."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    bodies = [json.dumps(make_events(BATCH)).encode() for _ in range(BODIES)]
    tune_gc()  # the processor's own GC settings
    for name, fn in CANDIDATES:
        per_event = []
        for _ in range(rounds):
            c0 = time.process_time()
            for body in bodies:
                fn(body)
            per_event.append((time.process_time() - c0) / (BODIES * BATCH) * 1e6)
        runs = ", ".join(f"{x:.2f}" for x in per_event)
        print(f"{name:42s} µs/event median {statistics.median(per_event):.2f} (rounds {runs})")


if __name__ == "__main__":
    main()
