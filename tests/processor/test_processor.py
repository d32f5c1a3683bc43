"""The processor as a real process (the stack's `processor` part) writing to the embedded ClickHouse."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from functions.processor.settings import ProcessorSettings
from localstack.config import Ports, StackConfig
from localstack.parts import clickhouse as clickhouse_part
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url
from tests.helpers.processor import AUTH, TRACE, Proc, binary_headers, payload, start_processor


def structured(event_id: str, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "mcp-gateway", "type": "mcp.request",
            "time": datetime.now(UTC).isoformat(), "datacontenttype": "application/json",
            "data": payload(**data)}  # fmt: skip








def test_binary_delivery_stores_row_with_materialized_fields_and_trace(proc: Proc) -> None:
    eid = f"bin-{uuid.uuid4()}"
    r = httpx.post(proc.url + "/", headers=binary_headers(eid), content=json.dumps(payload()), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"inserted": 1, "duplicates": 0}
    assert proc.rows(eid) == [(eid, TRACE, "srv", "ns", "owner-team", "alice", "deny", "rm", "no_grant", "tools/call",
                               "caller-team")]  # fmt: skip


def test_structured_and_batch_deliveries(proc: Proc) -> None:
    prefix = f"st-{uuid.uuid4()}"
    r = httpx.post(proc.url + "/", json=structured(prefix + "-0"),
                   headers={"content-type": "application/cloudevents+json", **AUTH}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    batch = [structured(f"{prefix}-{i}", tool_name=f"t{i}") for i in range(1, 4)]
    r = httpx.post(proc.url + "/", content=json.dumps(batch),
                   headers={"content-type": "application/cloudevents-batch+json", **AUTH}, timeout=30)  # fmt: skip
    assert r.status_code == 200 and r.json() == {"inserted": 3, "duplicates": 0}
    assert [row[7] for row in proc.rows(prefix)] == ["rm", "t1", "t2", "t3"]


def test_redelivery_is_idempotent(proc: Proc) -> None:
    eid = f"dup-{uuid.uuid4()}"
    headers = binary_headers(eid)
    for expected in ({"inserted": 1, "duplicates": 0}, {"inserted": 0, "duplicates": 1}):
        r = httpx.post(proc.url + "/", headers=headers, content=json.dumps(payload()), timeout=30)
        assert r.json() == expected
    # A producer re-sending the id with a fresh time is still the same event.
    r = httpx.post(proc.url + "/", headers=binary_headers(eid), content=json.dumps(payload()), timeout=30)
    assert r.json() == {"inserted": 0, "duplicates": 1}
    assert len(proc.rows(eid)) == 1


def test_invalid_envelope_is_400_naming_the_field_and_writes_nothing(proc: Proc) -> None:
    eid = f"bad-{uuid.uuid4()}"
    headers = binary_headers(eid)
    del headers["ce-source"]
    r = httpx.post(proc.url + "/", headers=headers, content=json.dumps(payload()), timeout=30)
    assert r.status_code == 400 and r.json()["error"] == "invalid_event"
    assert [e["field"] for e in r.json()["errors"]] == ["source"]
    r = httpx.post(proc.url + "/", headers=binary_headers(eid), content=b"{not json", timeout=30)
    assert r.status_code == 400
    batch = [structured(eid + "-0"), {**structured(eid + "-1"), "type": ""}]
    r = httpx.post(proc.url + "/", content=json.dumps(batch),
                   headers={"content-type": "application/cloudevents-batch+json", **AUTH}, timeout=30)  # fmt: skip
    assert r.status_code == 400 and r.json()["errors"][0]["field"].startswith("[1].type")
    assert proc.rows(eid) == []


async def test_concurrent_deliveries_share_inserts(proc: Proc) -> None:
    prefix = f"conc-{uuid.uuid4()}"
    async with httpx.AsyncClient(base_url=proc.url, timeout=60) as client:
        before = _metric(await client.get("/metrics"), "processor_batch_size_count")
        results = await asyncio.gather(*(
            client.post("/", headers=binary_headers(f"{prefix}-{i:03d}"), content=json.dumps(payload()))
            for i in range(60)
        ))  # fmt: skip
        after = _metric(await client.get("/metrics"), "processor_batch_size_count")
    assert all(r.status_code == 200 for r in results)
    assert len(proc.rows(prefix)) == 60
    assert after - before < 60  # fewer INSERTs than deliveries


def _metric(resp: httpx.Response, name: str) -> float:
    for line in resp.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing")


def test_clickhouse_down_is_503_then_recovers_after_restart(tmp_path: Path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    with Supervisor(cfg) as sup:
        sup.start_all(clickhouse_part.components(cfg))
        start_processor(sup, cfg, "mcp")
        url = cfg.url("processor")
        eid = f"down-{uuid.uuid4()}"
        assert httpx.get(url + "/ready", timeout=30).status_code == 200
        sup.stop("clickhouse")
        r = httpx.post(url + "/", headers=binary_headers(eid), content=json.dumps(payload()), timeout=30)
        assert r.status_code == 503 and r.json()["error"] == "storage_unavailable"
        assert httpx.get(url + "/ready", timeout=30).status_code == 503
        assert httpx.get(url + "/live", timeout=30).status_code == 200
        sup.start_all(clickhouse_part.components(cfg))
        r = httpx.post(url + "/", headers=binary_headers(eid), content=json.dumps(payload()), timeout=30)
        assert r.status_code == 200 and r.json()["inserted"] == 1
        client = clickhouse_client_from_url(cfg.url("clickhouse_http"), "mcp")
        assert client.query("SELECT count() FROM events FINAL WHERE event_id = {e:String}",
                            parameters={"e": eid}).result_rows == [(1,)]  # fmt: skip


def test_settings_from_env() -> None:
    s = ProcessorSettings.from_env({"PORT": "9000", "BATCH_MAX_WAIT_MS": "0", "CLICKHOUSE_URL": "http://h:1"})
    assert (s.port, s.metrics_port, s.batch_max_wait_ms, s.clickhouse.url) == (9000, 9102, 0, "http://h:1")
    with pytest.raises(ValueError, match="PORT"):
        ProcessorSettings.from_env({"PORT": "x"})
    with pytest.raises(ValueError, match="BATCH_MAX_EVENTS"):
        ProcessorSettings.from_env({"BATCH_MAX_EVENTS": "0"})
    assert (s.batch_max_events, s.batch_busy_wait_ms) == (10_000, 50)
    assert ProcessorSettings.from_env({"BATCH_BUSY_WAIT_MS": "0"}).batch_busy_wait_ms == 0  # off
    with pytest.raises(ValueError, match="BATCH_BUSY_WAIT_MS"):
        ProcessorSettings.from_env({"BATCH_BUSY_WAIT_MS": "-1"})
    assert (s.batch_groups, ProcessorSettings.from_env({"BATCH_GROUPS": "2"}).batch_groups) == (1, 2)
    for bad in ("0", "9"):
        with pytest.raises(ValueError, match="BATCH_GROUPS"):
            ProcessorSettings.from_env({"BATCH_GROUPS": bad})


async def test_unencodable_event_fails_only_its_own_delivery(proc: Proc) -> None:
    # A lone surrogate in the id passes JSON decoding but cannot be stored as UTF-8: that
    # delivery is refused (422, dead-letter), the deliveries batched with it are stored.
    prefix = f"poison-{uuid.uuid4()}"
    good = [json.dumps(structured(f"{prefix}-{i}")) for i in range(5)]
    bad = json.dumps(structured("x")).replace('"id": "x"', f'"id": "{prefix}-bad\\ud800"')
    ct = {"content-type": "application/cloudevents+json", **AUTH}
    async with httpx.AsyncClient(base_url=proc.url, timeout=60) as client:
        results = await asyncio.gather(*(client.post("/", content=b, headers=ct) for b in [*good[:3], bad, *good[3:]]))
    assert [r.status_code for r in results] == [200, 200, 200, 422, 200, 200]
    assert results[3].json()["error"] == "rejected_by_storage" and "not valid UTF-8" in results[3].json()["message"]
    assert len(proc.rows(prefix)) == 5


def test_dedup_settings_from_env() -> None:
    s = ProcessorSettings.from_env({"DEDUP_MODE": "FULL", "DEDUP_RECENT_IDS": "0", "DEDUP_WARM_MINUTES": "0"})
    assert (s.dedup_mode, s.dedup_recent_ids, s.dedup_warm_minutes) == ("full", 0, 0)
    assert ProcessorSettings.from_env({}).dedup_mode == "recent"
    with pytest.raises(ValueError, match="DEDUP_MODE"):
        ProcessorSettings.from_env({"DEDUP_MODE": "never"})
    with pytest.raises(ValueError, match="DEDUP_RECENT_IDS"):
        ProcessorSettings.from_env({"DEDUP_RECENT_IDS": "-1"})


def test_restarted_processor_still_counts_a_redelivery_as_duplicate(
    clickhouse_stack: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The recent-id set is rebuilt from the table on start-up, so a delivery the old process
    # stored (but whose answer was lost) is skipped, not written a second time.
    ports = dataclasses.replace(Ports.free(), clickhouse_http=clickhouse_stack.config.ports.clickhouse_http)
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("restart"), ports=ports)
    database = f"p_{uuid.uuid4().hex[:10]}"
    eid = f"restart-{uuid.uuid4()}"
    headers = binary_headers(eid)
    with Supervisor(cfg) as sup:
        start_processor(sup, cfg, database)
        r = httpx.post(cfg.url("processor") + "/", headers=headers, content=json.dumps(payload()), timeout=30)
        assert r.json() == {"inserted": 1, "duplicates": 0}
        sup.stop("processor", kill=True)
        start_processor(sup, cfg, database)
        r = httpx.post(cfg.url("processor") + "/", headers=headers, content=json.dumps(payload()), timeout=30)
        assert r.json() == {"inserted": 0, "duplicates": 1}
    client = clickhouse_client_from_url(clickhouse_stack.url, database)
    assert client.query("SELECT count() FROM events WHERE event_id = {e:String}",
                        parameters={"e": eid}).result_rows == [(1,)]  # fmt: skip  (no FINAL: not even a physical copy)
