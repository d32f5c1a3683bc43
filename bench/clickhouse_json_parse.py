"""Server CPU per event when ClickHouse parses the CloudEvents JSON itself, against RowBinary rows.

The question behind issue 17.5 ("where does per-event work belong?"): the processor spends
≈10 µs/event of Python on parsing, checking and re-encoding each event; this measures what the
same work costs inside ClickHouse. One in-process chdb (no HTTP, as `--chdb-reference` in
bench/processor_throughput.py) inserts the same rows, alternately:
* `rowbinary`: the processor's INSERT today (rows built in Python, `FORMAT RowBinary`);
* `json`: the delivered batch as it arrives, `INSERT … SELECT … FROM file(…, JSONEachRow)` with
  the timestamp parsed and the trace id cut out in SQL and `data` read as its JSON text.
`python -m bench.clickhouse_json_parse [rounds]`; prints CPU and wall µs per event of each round.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.processor_throughput import make_events
from mcp_sentinel.storage.events import EventRecord, encode_rowbinary
from mcp_sentinel.storage.schema import INSERT_COLUMNS, MIGRATIONS

TOTAL = 96_000
PER_INSERT = 8_000  # the baseline's INSERT size in bench:processor
_JSON_INSERT = (
    "INSERT INTO js.events ({cols}) SELECT id, parseDateTime64BestEffort(time, 3), "
    "if(length(traceparent) = 55, substring(traceparent, 4, 32), ''), source, type, data "
    "FROM file('{path}', 'JSONEachRow', 'id String, time String, traceparent String, source String, type String, "
    "data String') SETTINGS input_format_json_read_objects_as_strings = 1"
)


def main() -> None:
    """Alternate the two insert forms for `rounds` rounds; print µs per event."""
    import chdb

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    events = make_events(TOTAL)
    records = [EventRecord(str(e["id"]), datetime.fromisoformat(str(e["time"])), "", str(e["source"]),
                           str(e["type"]), json.dumps(e["data"], separators=(",", ":"))) for e in events]  # fmt: skip
    cols = ", ".join(INSERT_COLUMNS)
    results: dict[str, list[str]] = {"rowbinary": [], "json": []}
    with tempfile.TemporaryDirectory() as tmp:
        conn = chdb.connect(str(Path(tmp) / "db"))  # type: ignore[no-untyped-call]
        for db in ("rb", "js"):
            conn.query(f"CREATE DATABASE IF NOT EXISTS {db}")
            conn.query(MIGRATIONS[0].statements[0].format(db=db, retention_days=90))
        files = []
        for i in range(0, TOTAL, PER_INSERT):
            rb, js = Path(tmp) / f"rb-{i}.bin", Path(tmp) / f"js-{i}.json"
            rb.write_bytes(encode_rowbinary(records[i : i + PER_INSERT]))
            js.write_bytes(json.dumps(events[i : i + PER_INSERT]).encode())
            files.append((rb, js))
        for _ in range(rounds):
            for kind in results:
                c0, t0 = time.process_time(), time.perf_counter()
                for rb, js in files:
                    if kind == "rowbinary":
                        conn.query(f"INSERT INTO rb.events ({cols}) FROM INFILE '{rb}' FORMAT RowBinary")
                    else:
                        conn.query(_JSON_INSERT.format(cols=cols, path=js))
                cpu, wall = (time.process_time() - c0) / TOTAL * 1e6, (time.perf_counter() - t0) / TOTAL * 1e6
                results[kind].append(f"{cpu:.1f}/{wall:.1f}")
    for kind, rows in results.items():
        print(f"{kind:10s} CPU/wall µs per event, by round: {', '.join(rows)}")
    sys.stdout.flush()
    os._exit(0)  # skip chdb's global teardown, which can crash at interpreter exit


if __name__ == "__main__":
    main()
