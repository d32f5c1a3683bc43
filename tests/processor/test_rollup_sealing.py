"""The real processor seals rollups in the background, and a redelivery through it is never double counted."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from localstack.config import Ports, StackConfig
from localstack.parts import processor as processor_part
from localstack.supervisor import Supervisor
from mcp_sentinel.storage import rollups
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.queries import EventQueries
from mcp_sentinel.storage.usage import UsageQuery, usage


def _event(eid: str, ts: datetime, i: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": eid, "source": "mcp-gateway", "type": "mcp.request", "time": ts.isoformat(),
            "datacontenttype": "application/json",
            "data": {"server": f"srv-{i % 2}", "namespace": "ns", "team_id": "t", "human_id": f"h{i % 3}",
                     "agent_id": "a", "session_id": f"s{i % 4}", "decision": "allow" if i % 5 else "deny",
                     "tool_name": f"tool-{i % 3}"}}  # fmt: skip


def test_processor_seals_and_redelivery_stays_exact(
    clickhouse_stack: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ports = dataclasses.replace(Ports.free(), clickhouse_http=clickhouse_stack.config.ports.clickhouse_http)
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("sealing"), ports=ports)
    db = f"p_{uuid.uuid4().hex[:10]}"
    # Sealing covers the hours closed when it runs: start clear of an hour boundary, so the hours this
    # test expects sealed do not change under it (a run across 22:00 once saw no seal yet).
    wall = datetime.now(UTC)
    to_next_hour = 3600 - (wall.minute * 60 + wall.second)
    if to_next_hour < 150:
        time.sleep(to_next_hour + 1)
    start = datetime.now(UTC) - timedelta(hours=6)
    batch = [_event(f"seal-{uuid.uuid4()}", start + timedelta(minutes=7 * i), i) for i in range(40)]
    body = json.dumps(batch)
    # The local processor accepts deliveries only with the dispatcher's credential (delivery_auth.py).
    headers = {"content-type": "application/cloudevents-batch+json",
               "authorization": f"Bearer {cfg.processor_delivery_token}"}
    with Supervisor(cfg) as sup:
        (comp,) = processor_part.components(cfg)
        # No id memory: every redelivery below reaches the table as a second physical row.
        env = {**comp.env, "CLICKHOUSE_DB": db, "ROLLUP_SEAL_SECONDS": "1", "DEDUP_RECENT_IDS": "0"}
        sup.start(dataclasses.replace(comp, env=env))
        url = cfg.url("processor") + "/"
        for _ in range(3):
            r = httpx.post(url, content=body, headers=headers, timeout=60)
            assert r.status_code == 200 and r.json()["inserted"] == 40, r.text
        client = clickhouse_client_from_url(clickhouse_stack.url, db)
        assert client.query("SELECT count() FROM events").result_rows[0][0] == 120
        # A background merge that collapses the copies changes the hours' fingerprints after a seal
        # (the seal then stops being used until the next round reseals): wait for a usable seal.
        deadline = time.monotonic() + 60
        used = False
        while not used and time.monotonic() < deadline:
            used = bool(rollups.plan(client, db, None, None).seal_ids)
            time.sleep(0 if used else 0.5)
        assert used, "the processor sealed the closed hours and readers use the seals"
        now = EventQueries(client, db).now()
        fast, raw = EventQueries(client, db), EventQueries(client, db, use_rollups=False)
        assert fast.count() == raw.count() == 40
        q = UsageQuery(window_days=1)
        assert usage(fast, q, now=now) == usage(raw, q, now=now)
        assert usage(fast, q, now=now).totals.events == 40
