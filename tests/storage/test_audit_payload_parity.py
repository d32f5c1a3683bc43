"""The audit payload contract held in one place: the schema, the sidecar, ingest, storage, queries.

`mcp_sentinel/audit_payload.py` declares every payload field. The sidecar writes exactly those
(a real in-process gateway, its spool read back), ingest's check accepts what it writes, the
events table materialises every field the schema marks (the real engine, its own DESCRIBE), and
the queries read those columns back equal to the payload values.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

import httpx2
from aiohttp import web

from localstack.config import Ports
from mcp_sentinel.audit_payload import FIELDS, MATERIALIZED, AuditPayload, payload_errors
from mcp_sentinel.envelope import new_envelope
from mcp_sentinel.storage.events import EventRecord, EventWriter
from mcp_sentinel.storage.queries import _ROW_COLUMNS, FILTER_NAMES, EventQueries, EventRow
from mcp_sentinel.storage.schema import EVENTS_TABLE, MATERIALIZED_COLUMNS
from sidecar.app import create_app
from sidecar.settings import SidecarSettings
from tests.fixtures.sidecar import ALICE, serve_app

POLICY = Path(__file__).resolve().parents[2] / "examples" / "policies" / "server-a.json"
ENVELOPE_COLUMNS = ("event_id", "timestamp", "trace_id", "source", "event_type")


def test_typed_dict_and_field_table_agree() -> None:
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    assert AuditPayload.__required_keys__ == {f.name for f in FIELDS if f.always}
    assert AuditPayload.__optional_keys__ == {f.name for f in FIELDS if not f.always}
    hints = get_type_hints(AuditPayload)
    for f in FIELDS:
        hint = hints[f.name]
        assert set(get_args(hint) or (hint,)) == set(f.kinds), f.name
    assert all(f.kinds == (str,) for f in MATERIALIZED)  # JSONExtractString reads strings only


def test_storage_and_queries_use_the_schema_names() -> None:
    assert MATERIALIZED_COLUMNS == tuple((f.name, f.column) for f in MATERIALIZED)
    assert _ROW_COLUMNS == (*ENVELOPE_COLUMNS, *(f.name for f in MATERIALIZED), "payload")
    assert [f.name for f in fields(EventRow)] == ["id", *_ROW_COLUMNS[1:]]
    assert set(FILTER_NAMES) == {"trace_id", "source", "event_type", *(f.name for f in MATERIALIZED)}


def test_payload_errors_name_every_mistyped_field() -> None:
    ok = {"server": "s", "status": 200, "rpc_id": "a", "unknown_key": [1]}
    assert payload_errors(ok) == [] and payload_errors({"rpc_id": 7}) == []
    bad = {"server": 1, "status": "200", "latency_ms": True, "rpc_id": 1.5, "decision": None}
    assert payload_errors(bad) == [
        ("server", "must be a string"),
        ("status", "must be an integer"),
        ("latency_ms", "must be an integer"),
        ("rpc_id", "must be a string or an integer"),
        ("decision", "must be a string"),
    ]


async def _spooled_payloads(tmp_path: Path) -> list[dict[str, Any]]:
    """Payloads a real gateway writes for an allowed call, a denied call, a prompt, a refusal and a stream."""
    ports = Ports.free()

    async def mcp(request: web.Request) -> web.Response:
        msg = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": msg.get("id"), "result": {"content": []}})

    upstream = web.Application()
    upstream.router.add_post("/mcp", mcp)
    up = await serve_app(upstream, ports.sample_mcp)
    settings = SidecarSettings.from_env({
        "PORT": str(ports.sidecar_a), "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}",
        "POLICY_FILE": str(POLICY), "AUDIT_SPOOL_DIR": str(tmp_path / "spool"),
    })  # fmt: skip
    sc = await serve_app(create_app(settings), ports.sidecar_a)
    url = f"http://127.0.0.1:{ports.sidecar_a}/mcp"
    hdrs = {**ALICE, "Accept": "application/json, text/event-stream",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}  # fmt: skip
    calls: list[tuple[dict[str, Any] | None, int]] = [
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": {}}}, 200),
        ({"jsonrpc": "2.0", "id": "d", "method": "tools/call", "params": {"name": "delete_document"}}, 403),
        ({"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "p"}}, 403),
        (None, 415),
    ]
    try:
        async with httpx2.AsyncClient(timeout=30) as client:
            for body, want in calls:
                if body is None:
                    r = await client.post(url, content=b"x", headers={**hdrs, "Content-Type": "text/plain"})
                else:
                    r = await client.post(url, json=body, headers=hdrs)
                assert r.status_code == want, r.text
    finally:
        await sc.cleanup()
        await up.cleanup()
    lines = [ln for seg in sorted((tmp_path / "spool").glob("seg-*.jsonl")) for ln in seg.read_bytes().splitlines()]
    return [json.loads(ln)["data"] for ln in lines]


async def test_what_the_sidecar_writes_is_the_schema_and_storage_reads_it_back(
    tmp_path: Path, ch_client: Any, ch_database: str
) -> None:
    payloads = await _spooled_payloads(tmp_path)
    assert len(payloads) == 4
    known = {f.name for f in FIELDS}
    for p in payloads:
        assert payload_errors(p) == [], p  # what ingest checks
        assert {f.name for f in FIELDS if f.always} <= set(p) <= known, set(p) ^ known
    by_reason = {p["reason"]: p for p in payloads}
    assert {"tool_name", "rpc_method", "rpc_id", "trace_id", "matched_grant"} <= set(payloads[0])
    assert by_reason["rpc_inspection_failed"]["status"] == 415
    assert any("prompt_name" in p for p in payloads)

    # The real table materialises every schema column with the schema's type...
    described = {r[0]: r[1] for r in ch_client.query(f"DESCRIBE TABLE {ch_database}.{EVENTS_TABLE}").result_rows}
    for f in MATERIALIZED:
        assert described.get(f.name) == f.column, f.name
    # ... and the queries read back, column by column, what the sidecar put in the payload.
    records = [
        EventRecord.from_envelope(new_envelope("mcp-gateway", "mcp.request", p, event_id=f"parity-{i}"))
        for i, p in enumerate(payloads)
    ]
    EventWriter(ch_client, ch_database).write(records)
    rows = {r.id: r for r in EventQueries(ch_client, ch_database).events(limit=10).events}
    assert len(rows) == len(payloads)
    for i, p in enumerate(payloads):
        row = rows[f"parity-{i}"]
        for f in MATERIALIZED:
            assert getattr(row, f.name) == p.get(f.name, ""), (f.name, p)
        assert row.payload == p
