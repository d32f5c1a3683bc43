"""A destructive call waits for an approval: real sidecar process, sample MCP server, API over HTTP,
Temporal dev server with the ApprovalWorkflow worker, Postgres.

The grant allows `delete_document` but asks for an approval of destructive calls: the first call
is denied `approval_required` with the approval's id and link, the owner approves through the API,
the same call then goes through once, and the next identical call needs a new approval.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
import uvicorn
from temporalio.testing import WorkflowEnvironment

from functions.api.app import create_app
from localstack.config import Ports, StackConfig, free_port
from localstack.parts import sample_mcp
from localstack.supervisor import Supervisor
from mcp_sentinel.gateway_credentials import GatewayBinding, issue
from mcp_sentinel.identity.store import IdentityStore
from tests.fixtures.sidecar import SidecarProcess
from tests.helpers.api import base_settings
from tests.helpers.approvals import ALICE, INITIALIZE, NS, SERVER, TABLES, approvals_worker, policy_text
from tests.helpers.approvals import tool_call as call
from workflows.approvals.workflows import TASK_QUEUE

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]

SECRET = "gateway-secret-for-tests-0123456789abcdef"


@dataclass
class World:
    api: httpx.AsyncClient
    owner: dict[str, str]
    team: str
    data: Path
    upstream: str
    api_url: str


def sidecar(world: World, name: str, *, api_url: str | None = None, observe: bool = False) -> SidecarProcess:
    policy = world.data / f"{name}.json"
    policy.write_text(policy_text(observe=observe))
    return SidecarProcess(
        {
            "PORT": str(free_port()),
            "METRICS_PORT": str(free_port()),
            "LISTEN_HOST": "127.0.0.1",
            "UPSTREAM_URL": world.upstream,
            "POLICY_FILE": str(policy),
            "MCP_SERVER_NAME": SERVER,
            "MCP_SERVER_NAMESPACE": NS,
            "AUDIT_SPOOL_DIR": str(world.data / f"spool-{name}"),
            "APPROVALS_API_URL": world.api_url if api_url is None else api_url,
            "ANALYTICS_API_KEY": issue(SECRET, GatewayBinding(NS, SERVER, world.team)),
        },
        world.data / f"{name}.log",
    )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("approvals-upstream"), ports=Ports.free())
    with Supervisor(cfg) as sup:
        sup.start_all(sample_mcp.components(cfg))
        yield cfg.url("sample_mcp")


@pytest_asyncio.fixture(loop_scope="session")
async def world(temporal_env: WorkflowEnvironment, pg_dsn: str, upstream: str,
                tmp_path: Path) -> AsyncIterator[World]:  # fmt: skip
    store = await IdentityStore.open(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE".encode())
    port = free_port()
    app = create_app(base_settings(pg_dsn, gateway_secrets=(SECRET,), approvals_ui_url="https://ui.example"),
                     temporal=temporal_env.client)  # fmt: skip
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(600):  # uvicorn offers no started event to wait on
            if server.started:
                break
            await asyncio.sleep(0.05)
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api,
            approvals_worker(temporal_env.client, TASK_QUEUE, pg_dsn),
        ):
            email = f"owner-{uuid.uuid4().hex[:6]}@example.com"
            await api.post("/api/auth/signup", json={"email": email, "password": "password123"})
            login = (await api.post("/api/auth/login", json={"email": email, "password": "password123"})).json()
            team = await store.create_team("red", "Red", login["user"]["id"])
            yield World(api, {"Authorization": f"Bearer {login['access_token']}"}, team.id, tmp_path, upstream,
                        f"http://127.0.0.1:{port}")  # fmt: skip
    finally:
        server.should_exit = True
        await serving
        await store.close()


_SESSIONS: dict[int, str] = {}


async def post(gw: SidecarProcess, body: Any) -> httpx.Response:
    """One JSON-RPC POST as alice, in an MCP session opened (initialize) on first use per gateway."""
    url = f"http://127.0.0.1:{gw.port}/mcp"
    headers = {**ALICE, "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=60) as c:
        if gw.port not in _SESSIONS:
            r = await c.post(url, json=INITIALIZE, headers=headers)
            assert r.status_code == 200, r.text
            _SESSIONS[gw.port] = r.headers["mcp-session-id"]
            await c.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers={**headers, "Mcp-Session-Id": _SESSIONS[gw.port]})  # fmt: skip
        return await c.post(url, json=body, headers={**headers, "Mcp-Session-Id": _SESSIONS[gw.port]})


def rpc(resp: httpx.Response) -> Any:
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in resp.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return resp.json()


def audit_reasons(gw: SidecarProcess, world: World, name: str) -> list[str]:
    out = []
    for f in sorted((world.data / f"spool-{name}").rglob("*")):
        if f.is_file():
            for line in f.read_bytes().splitlines():
                try:
                    out.append(json.loads(line)["data"]["reason"])
                except (ValueError, KeyError, TypeError):
                    continue
    return out


async def test_destructive_call_waits_for_approval_succeeds_once_then_needs_a_new_one(world: World) -> None:
    gw = sidecar(world, "main")
    try:
        doc = f"doc-{uuid.uuid4().hex[:6]}"
        first = await post(gw, call("delete_document", document_id=doc))
        assert first.status_code == 403, first.text
        err = first.json()["error"]["data"]
        assert err["reason"] == "approval_required" and err["url"] == "https://ui.example/#/approvals"
        assert err["tool"] == "delete_document" and err["expiresAt"]
        aid = err["approvalId"]
        # Retrying before the decision joins the same request.
        assert (await post(gw, call("delete_document", document_id=doc))).json()["error"]["data"]["approvalId"] == aid
        # Reads are not held.
        assert "error" not in rpc(await post(gw, call("search", query="x")))

        r = await world.api.post(f"/api/approvals/{aid}/approve", headers=world.owner)
        assert r.status_code == 200, r.text
        once = await post(gw, call("delete_document", rid=7, document_id=doc))
        assert once.status_code == 200, once.text
        assert rpc(once)["id"] == 7 and "error" not in rpc(once)
        twice = await post(gw, call("delete_document", document_id=doc))
        assert twice.status_code == 403
        assert twice.json()["error"]["data"]["reason"] == "approval_required"
        assert twice.json()["error"]["data"]["approvalId"] != aid
        # The approval was for exactly those arguments.
        other = (await world.api.post(f"/api/approvals/{twice.json()['error']['data']['approvalId']}/approve",
                                      headers=world.owner))  # fmt: skip
        assert other.status_code == 200
        different = await post(gw, call("delete_document", document_id=doc + "-other"))
        assert different.json()["error"]["data"]["reason"] == "approval_required"
    finally:
        gw.stop()
    reasons = audit_reasons(gw, world, "main")
    assert reasons.count("approval_used") == 1 and reasons.count("approval_required") >= 3


async def test_rejected_call_is_denied_approval_rejected(world: World) -> None:
    gw = sidecar(world, "reject")
    try:
        body = call("archive_document", document_id=f"doc-{uuid.uuid4().hex[:6]}")
        aid = (await post(gw, body)).json()["error"]["data"]["approvalId"]
        r = await world.api.post(f"/api/approvals/{aid}/reject", json={"note": "no"}, headers=world.owner)
        assert r.status_code == 200, r.text
        denied = await post(gw, body)
        assert denied.status_code == 403
        assert denied.json()["error"]["data"] == {"reason": "approval_rejected", "tool": "archive_document",
                                                  "approvalId": aid}  # fmt: skip
    finally:
        gw.stop()
    assert "approval_rejected" in audit_reasons(gw, world, "reject")


async def test_unreachable_approvals_api_fails_closed(world: World) -> None:
    gw = sidecar(world, "down", api_url=f"http://127.0.0.1:{free_port()}")
    try:
        r = await post(gw, call("delete_document", document_id="d"))
        assert r.status_code == 503 and r.json()["error"]["data"]["reason"] == "approval_unavailable"
        assert "error" not in rpc(await post(gw, call("search", query="x")))
    finally:
        gw.stop()


async def test_no_approvals_api_configured_fails_closed(world: World) -> None:
    gw = sidecar(world, "unset", api_url="")
    try:
        r = await post(gw, call("delete_document", document_id="d"))
        assert r.status_code == 503 and r.json()["error"]["data"]["reason"] == "approval_unavailable"
    finally:
        gw.stop()


async def test_a_batch_with_a_call_needing_approval_is_denied_whole(world: World) -> None:
    gw = sidecar(world, "batch")
    try:
        r = await post(gw, [call("search", rid=1, query="x"), call("delete_document", rid=2, document_id="d")])
        assert r.status_code == 403
        by_id = {e["id"]: e["error"]["data"] for e in r.json()}
        assert by_id[2]["reason"] == "approval_required" and "batch" in by_id[2]
        assert by_id[1]["reason"] == "batch_rejected"
    finally:
        gw.stop()


async def test_observe_mode_does_not_hold_calls(world: World) -> None:
    gw = sidecar(world, "observe", observe=True)
    try:
        r = await post(gw, call("delete_document", document_id=f"doc-{uuid.uuid4().hex[:6]}"))
        assert r.status_code == 200 and "error" not in rpc(r)
    finally:
        gw.stop()


async def test_arguments_that_are_not_an_object_fail_closed(world: World) -> None:
    gw = sidecar(world, "badargs")
    try:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "delete_document", "arguments": ["doc-1"]}}  # fmt: skip
        r = await post(gw, body)
        assert r.status_code == 503 and r.json()["error"]["data"]["reason"] == "approval_unavailable"
    finally:
        gw.stop()


async def test_a_caller_flooding_distinct_calls_is_capped(world: World) -> None:
    """Last in the module: it leaves alice with the API's cap of pending requests on this server."""
    gw = sidecar(world, "flood")
    try:
        reasons = []
        for i in range(60):  # the cap is 20; visibility may lag a little behind the starts
            r = await post(gw, call("delete_document", rid=i, document_id=f"flood-{uuid.uuid4().hex[:8]}"))
            reasons.append(r.json()["error"]["data"]["reason"])
            if reasons[-1] == "approval_limit":
                assert r.status_code == 429
                break
        assert reasons[-1] == "approval_limit" and reasons.count("approval_required") >= 15, reasons
    finally:
        gw.stop()
    assert "approval_limit" in audit_reasons(gw, world, "flood")

