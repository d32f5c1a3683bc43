"""Approval routes against a real Temporal dev server, the ApprovalWorkflow worker and Postgres.

The gateway asks with its per-gateway credential; the owners of the server's team (and admins)
list, approve and reject; members and other teams' owners cannot.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from functions.api.app import create_app
from mcp_sentinel.gateway_credentials import GatewayBinding, issue
from mcp_sentinel.identity.store import IdentityStore
from tests.helpers.api import base_settings, serve
from tests.helpers.approvals import TABLES, DevServer, approvals_worker
from workflows.approvals.workflows import TASK_QUEUE

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

SECRET = "gateway-secret-for-tests-0123456789abcdef"


@dataclass
class World:
    client: httpx.AsyncClient
    store: IdentityStore
    users: dict[str, dict[str, str]]
    red_ns: str
    red_team: str


async def _user(client: httpx.AsyncClient, email: str) -> tuple[str, dict[str, str]]:
    r = await client.post("/api/auth/signup", json={"email": email, "password": "password123"})
    assert r.status_code == 202, r.text
    r = await client.post("/api/auth/login", json={"email": email, "password": "password123"})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"}


@pytest_asyncio.fixture(loop_scope="session")
async def world(temporal_env: WorkflowEnvironment, pg_dsn: str) -> AsyncIterator[World]:
    store = await IdentityStore.open(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE".encode())
    settings = base_settings(pg_dsn, gateway_secrets=(SECRET,), approvals_ui_url="https://sentinel.example.com")
    app = create_app(settings, temporal=temporal_env.client)
    async with (
        serve(app) as client,
        approvals_worker(temporal_env.client, TASK_QUEUE, pg_dsn),
    ):
        users: dict[str, dict[str, str]] = {}
        ids: dict[str, str] = {}
        for who in ("red_owner", "red_member", "blue_owner"):
            ids[who], users[who] = await _user(client, f"{who}-{uuid.uuid4().hex[:6]}@example.com")
        red = await store.create_team("red", "Red", ids["red_owner"])
        await store.add_member(red.id, ids["red_member"], "member")
        await store.create_team("blue", "Blue", ids["blue_owner"])
        yield World(client, store, users, red.namespace, red.id)
    await store.close()


def ask(world: World, **extra: Any) -> dict[str, Any]:
    return {"tool": "delete_document", "arguments": {"id": "doc-1"}, "humanID": "alice", "agentID": "bot",
            "teamID": world.red_team, "sideEffect": "destructive", "grant": "g", "ttlSeconds": 600,
            **extra}  # fmt: skip


def gateway(world: World, server: str = "srv", secret: str = SECRET) -> dict[str, str]:
    return {"X-Gateway-Credential": issue(secret, GatewayBinding(world.red_ns, server, world.red_team))}


async def test_gateway_asks_owner_approves_call_is_used_once(world: World) -> None:
    c, u = world.client, world.users
    body = ask(world, arguments={"id": f"doc-{uuid.uuid4().hex[:6]}"})
    r = await c.post("/api/gateway/approvals", json=body, headers=gateway(world))
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["status"] == "pending" and first["url"] == "https://sentinel.example.com/#/approvals"
    aid = first["approvalId"]

    listed = (await c.get("/api/approvals", headers=u["red_owner"])).json()["approvals"]
    mine = [a for a in listed if a["id"] == aid]
    assert mine and mine[0]["arguments"] == body["arguments"] and mine[0]["server"] == "srv"
    assert mine[0]["namespace"] == world.red_ns and mine[0]["status"] == "pending"
    for who in ("red_member", "blue_owner"):
        assert (await c.get("/api/approvals", headers=u[who])).json() == {"approvals": []}
        assert (await c.post(f"/api/approvals/{aid}/approve", headers=u[who])).status_code == 403
        assert (await c.get(f"/api/approvals/{aid}", headers=u[who])).status_code == 403

    r = await c.post(f"/api/approvals/{aid}/approve", headers=u["red_owner"])
    assert r.status_code == 200, r.text
    assert r.json()["approval"]["status"] == "approved"
    assert (await c.post(f"/api/approvals/{aid}/approve", headers=u["red_owner"])).status_code == 409

    used = (await c.post("/api/gateway/approvals", json=body, headers=gateway(world))).json()
    assert used["status"] == "used" and used["approvalId"] == aid
    again = (await c.post("/api/gateway/approvals", json=body, headers=gateway(world))).json()
    assert again["status"] == "pending" and again["approvalId"] != aid
    rows = await world.store.list_audit(limit=200)
    assert any(r["action"] == "approval_approve" and aid in r["resource"] for r in rows)


async def test_rejection_is_answered_to_the_gateway_and_audited(world: World) -> None:
    c, u = world.client, world.users
    body = ask(world, arguments={"id": f"doc-{uuid.uuid4().hex[:6]}"})
    aid = (await c.post("/api/gateway/approvals", json=body, headers=gateway(world))).json()["approvalId"]
    r = await c.post(f"/api/approvals/{aid}/reject", json={"note": "wrong document"}, headers=u["red_owner"])
    assert r.status_code == 200, r.text
    answer = (await c.post("/api/gateway/approvals", json=body, headers=gateway(world))).json()
    assert answer["status"] == "rejected" and answer["approvalId"] == aid
    rows = await world.store.list_audit(limit=200)
    assert any(r["action"] == "approval_reject" and r["message"] == "wrong document" for r in rows)


async def test_the_credential_names_the_server_not_the_body(world: World) -> None:
    c = world.client
    body = ask(world, arguments={"id": "x"}, server="other", namespace="elsewhere")
    one = (await c.post("/api/gateway/approvals", json=body, headers=gateway(world, "srv"))).json()
    two = (await c.post("/api/gateway/approvals", json=body, headers=gateway(world, "srv-2"))).json()
    assert one["approvalId"] != two["approvalId"]  # a different server is a different approval
    detail = (await c.get(f"/api/approvals/{two['approvalId']}", headers=world.users["red_owner"])).json()
    assert detail["approval"]["server"] == "srv-2" and detail["approval"]["namespace"] == world.red_ns


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-Gateway-Credential": "sgw1.bad.mac"}, 401), ({"x-api-key": "test-admin-service-key"}, 401)],
)
async def test_gateway_route_needs_a_valid_gateway_credential(world: World, headers: dict[str, str],
                                                              status: int) -> None:  # fmt: skip
    r = await world.client.post("/api/gateway/approvals", json=ask(world), headers=headers)
    assert r.status_code == status, r.text


async def test_a_credential_signed_with_another_secret_is_refused(world: World) -> None:
    r = await world.client.post("/api/gateway/approvals", json=ask(world),
                                headers=gateway(world, secret="another-secret-0123456789abcdef-xyz"))  # fmt: skip
    assert r.status_code == 401


async def test_bad_gateway_bodies_are_400(world: World) -> None:
    c = world.client
    no_caller = ask(world, humanID="", agentID="", teamID="")
    assert (await c.post("/api/gateway/approvals", json=no_caller, headers=gateway(world))).status_code == 400
    huge = ask(world, arguments={"blob": "x" * 40000})
    assert (await c.post("/api/gateway/approvals", json=huge, headers=gateway(world))).status_code == 400
    assert (await c.post("/api/gateway/approvals", json=ask(world, ttlSeconds=5),
                         headers=gateway(world))).status_code == 400  # fmt: skip


async def test_service_keys_cannot_decide_and_unknown_ids_are_403(world: World) -> None:
    # A malformed id is a 400 (the path pattern is published); a well-formed unknown one is a 403.
    c = world.client
    admin_key = {"x-api-key": "test-admin-service-key"}
    assert (await c.post("/api/approvals/" + "0" * 32 + "." + str(uuid.uuid4()) + "/approve",
                         headers=admin_key)).status_code == 401  # fmt: skip
    assert (await c.get("/api/approvals/nope", headers=world.users["red_owner"])).status_code == 400
    unknown = "/api/approvals/" + "f" * 32 + "." + str(uuid.uuid4())
    assert (await c.get(unknown, headers=world.users["red_owner"])).status_code == 403
    assert (await c.get("/api/approvals", headers={})).status_code == 401


@pytest.mark.parametrize("secrets", [(SECRET,), ()])
async def test_gateway_route_without_temporal_or_secret_is_404_not_configured(
    world: World, pg_dsn: str, secrets: tuple[str, ...]
) -> None:
    app = create_app(base_settings(pg_dsn, gateway_secrets=secrets))  # no TEMPORAL_ADDRESS, no client
    async with serve(app) as client:
        r = await client.post("/api/gateway/approvals", json=ask(world), headers=gateway(world))
    assert r.status_code == 404 and r.json()["error"] == "not_configured", r.text
    assert ("INGEST_GATEWAY_SECRET" if not secrets else "Temporal") in r.json()["message"]


async def test_gateway_ask_against_a_frozen_temporal_is_503_within_the_bound(
    world: World, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal accepts connections but answers nothing (SIGSTOP): the ask ends as 503, not a hung request."""
    import functions.api.routes.approvals as route

    monkeypatch.setattr(route, "ASK_TIMEOUT_SECONDS", 1.0)
    server = DevServer(tmp_path / "temporal.db")
    server.start()
    try:
        client = await server.client()
        app = create_app(base_settings(pg_dsn, gateway_secrets=(SECRET,), temporal_address="configured"),
                         temporal=client)  # fmt: skip
        async with serve(app) as api:
            assert server.proc is not None
            os.killpg(server.proc.pid, signal.SIGSTOP)
            try:
                # Without the bound the request hangs as long as Temporal is frozen: wait_for fails it.
                r = await asyncio.wait_for(api.post("/api/gateway/approvals", json=ask(world),
                                                    headers=gateway(world)), 30)  # fmt: skip
            finally:
                os.killpg(server.proc.pid, signal.SIGCONT)
        assert r.status_code == 503 and r.json()["error"] == "service_unavailable", r.text
    finally:
        server.kill()
