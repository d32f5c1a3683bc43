"""One real local stack for the `sentinel` CLI tests, started through the same stack parts `sentinel up` uses.

Parts: `postgres` (identity store), `kube` (local Kubernetes API server with the CRDs and the demo
servers), `clickhouse` + `processor` (audit events are stored the way the KafkaSource delivers them),
`api`, and `temporal` + `worker` with `RESTART_BACKEND=local` for `sentinel restart`. A thread plays
the `sentinel up` main loop (`serve_pending`), which is what carries out the worker's local restarts.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.control import serve_pending
from localstack.supervisor import Supervisor
from tests.helpers.cli import TEAM_NS, TEAM_SERVER, Stack

PARTS = {"postgres", "kube", "clickhouse", "processor", "api", "temporal", "worker"}






def _events(now: datetime) -> list[dict[str, Any]]:
    """Two events that differ in every filterable field (CloudEvents, as the KafkaSource delivers them)."""
    def one(i: int, ts: datetime, **payload: str) -> dict[str, Any]:
        return {
            "specversion": "1.0", "id": f"cli-event-{i}", "source": payload.pop("source"),
            "type": payload.pop("type"), "time": ts.isoformat().replace("+00:00", "Z"),
            "traceparent": f"00-{i:032x}-{i:016x}-01", "datacontenttype": "application/json", "data": payload,
        }

    return [
        one(1, now - timedelta(minutes=2), source="server-a-gateway", type="mcp.request", server="server-a",
            namespace="mcp-servers", team_id="team-one", cluster="local", human_id="carol", agent_id="cli-agent",
            session_id="sess-carol", decision="deny", tool_name="delete_file", reason="tool_not_granted",
            rpc_method="tools/call", subject_team_id="team-carol"),
        one(2, now - timedelta(minutes=1), source="server-b-gateway", type="mcp.response", server="server-b",
            namespace=TEAM_NS, team_id="team-two", cluster="edge", human_id="dave", agent_id="other-agent",
            session_id="sess-dave", decision="allow", tool_name="search", reason="granted",
            rpc_method="tools/list", subject_team_id="team-dave"),
    ]


def _prepare(cfg: StackConfig) -> list[dict[str, Any]]:
    # The processor is the real write path (KafkaSource -> processor -> ClickHouse).
    events = _events(datetime.now(UTC))
    for event in events:
        r = httpx.post(cfg.url("processor", "/"), content=json.dumps(event),
                       headers={"content-type": "application/cloudevents+json",
                                "authorization": f"Bearer {cfg.processor_delivery_token}"}, timeout=60)
        assert r.status_code == 200 and r.json()["inserted"] == 1, r.text
    # A team namespace exists in the cluster (provisioning would create it); its server goes through the API.
    from mcp_sentinel.kube.client import load_kube
    from mcp_sentinel.kube.resources import SentinelKube

    api = load_kube({"KUBECONFIG": str(cfg.kubeconfig)})
    try:
        SentinelKube(api).ensure_namespace(TEAM_NS, {"app.kubernetes.io/part-of": "mcp-sentinel"})
    finally:
        api.close()  # type: ignore[no-untyped-call]
    r = httpx.post(cfg.url("api", "/api/runtime/servers"), headers={"x-api-key": cfg.admin_api_key}, timeout=60,
                   json={"name": TEAM_SERVER, "namespace": TEAM_NS, "image": "example/server", "teamID": "team-two",
                         "gateway": {"enabled": True}})  # only gateway-enabled servers get a policy
    assert r.status_code == 200, r.text
    return events


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The real stack, shared by a module's tests (start-up is the expensive part)."""
    # Not pytest's tmp_path: its 0700 root-owned parents are unreachable for the postgres OS user.
    data = Path(tempfile.mkdtemp(prefix="sentinel-cli-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    stop = threading.Event()
    try:
        with Supervisor(cfg) as sup:
            st = Stack(cfg, sup, [], data / "flaky-refuses")
            sup.start_all([*local_stack(cfg, PARTS), st.flaky()])

            def up_loop() -> None:  # the part of `sentinel up`'s main loop that serves restarts
                while not stop.is_set():
                    serve_pending(sup)
                    time.sleep(0.1)

            loop = threading.Thread(target=up_loop, daemon=True)
            loop.start()
            try:
                st.events = _prepare(cfg)
                yield st
            finally:
                stop.set()
                loop.join(30)
    finally:
        shutil.rmtree(data, ignore_errors=True)
