"""End to end over real processes: kube API server, Postgres, ClickHouse, Kafka (tansu), ingest, dispatcher,
processor, the API, the sample MCP server and the server-a sidecar.

A user logs in and creates an API key; an admin creates a team and grants the user's agent a tool
on server-a; the user obtains an adapter session and calls the tool through the sidecar (allowed);
the admin revokes the session; the next call is denied 401 `session_revoked`; both decisions show
up in `/api/events/filter?server=server-a`.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.supervisor import Supervisor
from tests.fixtures.sidecar import mcp_client

# temporal + worker: the admin's team is provisioned by the ProvisionTeam workflow, as in the local stack.
PARTS = {"s3", "kafka", "clickhouse", "postgres", "kube", "temporal", "sample_mcp", "ingest", "processor", "dispatcher",
         "api", "worker", "sidecars"}
AGENT = "e2e-agent"


@pytest.fixture(scope="module")
def stack() -> Iterator[StackConfig]:
    # Not pytest's tmp_path: its 0700 root-owned parents are unreachable for the postgres user.
    data = Path(tempfile.mkdtemp(prefix="sentinel-e2e-"))
    data.chmod(0o755)
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    try:
        with Supervisor(cfg) as sup:
            sup.start_all(local_stack(cfg, only=PARTS))
            yield cfg
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _call(tool_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": tool_id, "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "plan"}}}


@pytest.mark.timeout(240)
async def test_grant_session_call_revoke_and_audit(stack: StackConfig) -> None:
    cfg = stack
    admin = {"x-api-key": cfg.admin_api_key}
    async with httpx.AsyncClient(base_url=cfg.url("api"), timeout=30) as api:
        login = await api.post("/api/auth/login", json={"email": "test@mcpruntime.org", "password": "test@123"})
        assert login.status_code == 200, login.text
        user_id = login.json()["user"]["id"]
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        key = await api.post("/api/user/api-keys", json={"name": "agent"}, headers=bearer)
        assert key.status_code == 200, key.text
        user_key = {"x-api-key": key.json()["api_key"]}

        created = await api.post("/api/runtime/teams", json={"slug": "e2e"}, headers=admin)
        assert created.status_code == 201, created.text
        team = created.json()["team"]
        assert team["namespace"] == "mcp-team-e2e"  # provisioned by the workflow
        r = await api.put(f"/api/runtime/teams/e2e/members/{user_id}", json={"role": "member"}, headers=admin)
        assert r.status_code == 200, r.text
        r = await api.post("/api/runtime/grants", headers=admin, json={
            "name": "e2e-grant", "namespace": "mcp-servers", "serverRef": {"name": "server-a"},
            "subject": {"humanID": user_id, "agentID": AGENT, "teamID": team["id"]}, "maxTrust": "low",
            "allowedSideEffects": ["read"], "toolRules": [{"name": "search", "decision": "allow"}]})
        assert r.status_code == 200, r.text
        r = await api.post("/api/runtime/adapter/sessions", headers=user_key,
                           json={"serverName": "server-a", "namespace": "mcp-servers", "agentID": AGENT})
        assert r.status_code == 200, r.text
        session = r.json()
        assert session["teamID"] == team["id"] and session["consentedTrust"] == "low"

        identity = {"X-MCP-Human-ID": user_id, "X-MCP-Agent-ID": AGENT, "X-MCP-Team-ID": team["id"],
                    "X-MCP-Agent-Session": session["name"]}
        # The API wrote the policy file before answering; the sidecar picks it up on its next poll.
        deadline = time.monotonic() + 15
        while True:
            try:
                async with mcp_client(cfg.url("sidecar_a", "/mcp"), identity) as client:
                    result = await client.call_tool("search", {"query": "plan"})
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        assert not result.is_error

        async with httpx.AsyncClient(timeout=10) as sidecar:
            t0 = time.perf_counter()
            r = await api.patch(f"/api/runtime/sessions/mcp-servers/{session['name']}", json={"revoked": True},
                                headers=admin)
            assert r.status_code == 200, r.text
            api_done = time.perf_counter() - t0
            denied = None
            for i in range(200):
                d = await sidecar.post(cfg.url("sidecar_a", "/mcp"), json=_call(i), headers={
                    **identity, "Accept": "application/json, text/event-stream"})
                if d.status_code == 401:
                    denied = d
                    break
                await asyncio.sleep(0.02)
            propagation = time.perf_counter() - t0
        assert denied is not None and "session_revoked" in denied.text, denied.text if denied else "never denied"
        print(f"revoke propagation: API {api_done * 1000:.0f} ms, sidecar denial after {propagation * 1000:.0f} ms")
        assert propagation < 5.0

        # Wait for the allowed call and the revocation's denial themselves: the first calls may also have
        # been denied `session_not_found` while the new session reached the gateway's policy.
        allowed: list[dict[str, Any]] = []
        revoked: list[dict[str, Any]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (allowed and revoked):
            r = await api.get("/api/events/filter", params={"server": "server-a", "human_id": user_id},
                              headers=admin)
            assert r.status_code == 200, r.text
            events = r.json()["events"]
            allowed = [e for e in events if e.get("decision") == "allow"]
            revoked = [e for e in events if e.get("decision") == "deny" and e.get("reason") == "session_revoked"]
            await asyncio.sleep(0.5)
        assert allowed and revoked, events
        assert revoked[0]["session_id"] == session["name"]
        early = {e.get("reason") for e in events if e.get("decision") == "deny"} - {"session_revoked"}
        assert early <= {"session_not_found"}, early
