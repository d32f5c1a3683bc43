"""Do ClickHouse's JSON derivations store what the processor's Python stores? (issue 17.5)

The ClickHouse-side design for the processor (docs/decisions/audit-pipeline.md, "Processor ratio
3") needs the server to derive every column exactly as `decode_http_fields` + `EventRecord` do,
or to recognise the events it cannot and leave them to Python. This probe feeds one-event
batches that differ in one field through both and prints each outcome side by side:

* Python: the processor's own decode (`decode_http_fields`), the stored timestamp in epoch ms
  and the stored payload text, or the 400 it answers;
* ClickHouse: the candidate derivations over the same body, read as `JSONAsString` (so field
  types stay visible): `parseDateTime64BestEffortOrNull(time, 3)`, `JSONExtractString(…, 'id')`,
  `JSONExtractRaw(…, 'data')`, and `data` read raw with `input_format_json_read_objects_as_strings`.

`python -m bench.clickhouse_json_parity` (in-process chdb, a few seconds); `DIFFERS` marks a row
where ClickHouse would store something else or accept what Python refuses.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, decode_http_fields
from mcp_sentinel.envelope import EnvelopeError
from mcp_sentinel.storage.events import EventRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BASE = ('{"specversion":"1.0","id":"e-1","source":"mcp-gateway","type":"mcp.request",'
         '"time":"2026-12-08T03:00:00.123Z","data":{"server":"s"}}')  # fmt: skip

# (what varies, the raw JSON text of the one event)
CASES: tuple[tuple[str, str], ...] = (
    ("time with nanoseconds", _BASE.replace("03:00:00.123Z", "03:00:00.123456789Z")),
    ("time 24:00:00", _BASE.replace("03:00:00.123Z", "24:00:00Z")),
    ("time leap second :60", _BASE.replace("03:00:00.123Z", "23:59:60Z")),
    ("time offset +25:00", _BASE.replace("03:00:00.123Z", "03:00:00+25:00")),
    ("time without offset", _BASE.replace("03:00:00.123Z", "03:00:00")),
    ("time basic format", _BASE.replace("2026-12-08T03:00:00.123Z", "20261208T030000Z")),
    ("time Feb 30", _BASE.replace("2026-12-08", "2026-02-30")),
    ("data float 1.0", _BASE.replace('{"server":"s"}', '{"server":"s","x":1.0}')),
    ("data float 2e5", _BASE.replace('{"server":"s"}', '{"server":"s","x":2e5}')),
    ("data float 0.00001", _BASE.replace('{"server":"s"}', '{"server":"s","x":0.00001}')),
    ("data int > 64 bits", _BASE.replace('{"server":"s"}', '{"server":"s","x":12345678901234567890123}')),
    ("data duplicate key", _BASE.replace('{"server":"s"}', '{"server":"a","server":"b"}')),
    ("data \\u escape", _BASE.replace('{"server":"s"}', '{"server":"\\u00e9"}')),
    ("data with spaces", _BASE.replace('{"server":"s"}', '{ "server" : "s" }')),
    ("data is a string", _BASE.replace('{"server":"s"}', '"{\\"server\\":\\"s\\"}"')),
    ("id duplicate key", _BASE.replace('"id":"e-1"', '"id":"e-1","id":"e-2"')),
    ("id a number", _BASE.replace('"id":"e-1"', '"id":1')),
)

_SQL = (
    "SELECT toUnixTimestamp64Milli(parseDateTime64BestEffortOrNull(JSONExtractString(json, 'time'), 3)), "
    "JSONType(json, 'id'), JSONExtractString(json, 'id'), JSONType(json, 'data'), JSONExtractRaw(json, 'data') "
    "FROM format(JSONAsString, {body})"
)
_RAW_SQL = (
    "SELECT data FROM format(JSONEachRow, 'data String', {body}) "
    "SETTINGS input_format_json_read_objects_as_strings = 1, input_format_skip_unknown_fields = 1"
)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


Stored = tuple[str, str, str, str]  # id, epoch ms, payload via JSONExtractRaw, payload read as string


def python_side(body: bytes) -> tuple[Stored | None, str]:
    """What the processor stores for the body (payload twice, to compare with both readings), or its 400."""
    try:
        (ev,) = decode_http_fields({"content-type": BATCH_CONTENT_TYPE}, body)
    except EnvelopeError as exc:
        return None, "400 " + "; ".join(f"{e.field}: {e.reason}" for e in exc.errors)[:70]
    rec = EventRecord.from_envelope(ev)
    ms = str((rec.timestamp - _EPOCH) // timedelta(milliseconds=1))
    return (rec.event_id, ms, rec.payload, rec.payload), f"id={rec.event_id} ms={ms} payload={rec.payload}"


def clickhouse_side(query: Any, body: bytes) -> tuple[Stored | None, str]:
    """The candidate derivations' results for the same body: None when ClickHouse would refuse it."""
    text = _quote(body.decode())
    try:
        out = query(_SQL.format(body=text), "TSV").bytes().decode().rstrip("\n").split("\t")
        ms, id_type, eid, data_type, raw = out
        as_string = query(_RAW_SQL.format(body=text), "TSV").bytes().decode().rstrip("\n")
        as_string = as_string.encode().decode("unicode_escape")  # TSV escaping of the text
    except Exception as exc:  # a refusal is an outcome to print, not a crash of the probe
        return None, "refused: " + str(exc).split("\n")[0][:70]
    shown = f"id={eid}({id_type}) ms={ms} data({data_type}) raw={raw} read-as-string={as_string}"
    if ms == "\\N" or id_type != "String" or data_type != "Object":
        if as_string.startswith("{") and data_type == "String":
            shown += " (read as string alone, a string-valued data looks like an object)"
        return None, "refused: " + shown
    return (eid, ms, raw, as_string), shown


def main() -> None:
    """Print both sides for every case and whether each ClickHouse reading matches Python's row."""
    import chdb

    for name, event in CASES:
        body = f"[{event}]".encode()
        (py, py_text), (ch, ch_text) = python_side(body), clickhouse_side(chdb.query, body)
        if py is None or ch is None:
            verdict = "same   " if py is ch else "DIFFERS"
        else:
            wrong = [label for label, a, b in (("id/time", py[:2], ch[:2]), ("JSONExtractRaw payload", py[2], ch[2]),
                                               ("read-as-string payload", py[3], ch[3])) if a != b]  # fmt: skip
            verdict = f"DIFFERS ({', '.join(wrong)})" if wrong else "same   "
        print(f"{verdict} {name}\n    python:     {py_text}\n    clickhouse: {ch_text}")
    sys.stdout.flush()
    os._exit(0)  # skip chdb's global teardown, which can crash at interpreter exit


if __name__ == "__main__":
    json.loads(_BASE)  # the template itself is valid JSON
    main()
