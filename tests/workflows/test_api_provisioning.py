"""`POST /api/runtime/teams` through the ProvisionTeam workflow: real API app, Temporal, Kubernetes API, Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from functions.api.app import create_app
from mcp_sentinel.identity.store import IdentityStore
from mcp_sentinel.kube.objects import KubeCluster, Ref
from tests.helpers.api import ADMIN_KEY, base_settings, serve
from workflows.client import PROVISIONING_QUEUE
from workflows.provisioning.teams import IdentityTeamStore
from workflows.worker import WorkerSettings, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")
ADMIN = {"x-api-key": ADMIN_KEY}


@pytest_asyncio.fixture(loop_scope="session")
async def api_factory(pg_dsn: str, temporal_env: WorkflowEnvironment) -> AsyncIterator[Any]:
    """Build API apps whose team provisioner is the Temporal one (TEMPORAL_ADDRESS set)."""
    async with AsyncExitStack() as stack:

        async def build(wait_seconds: float) -> httpx.AsyncClient:
            settings = base_settings(pg_dsn, temporal_address="configured", provisioning_wait_seconds=wait_seconds)
            app = create_app(settings, temporal=temporal_env.client)
            return await stack.enter_async_context(serve(app))

        yield build


async def test_team_creation_runs_the_provisioning_workflow(
    api_factory: Any, temporal_env: WorkflowEnvironment, cluster: KubeCluster, pg_dsn: str
) -> None:
    store = await IdentityStore.open(pg_dsn)
    acts = build_activities(WorkerSettings(), cluster=cluster, teams=IdentityTeamStore(store=store))
    slug = f"t-{uuid.uuid4().hex[:8]}"
    try:
        with ThreadPoolExecutor(16) as ex:
            async with new_worker(temporal_env.client, PROVISIONING_QUEUE, acts, ex):
                api = await api_factory(30.0)
                r = await api.post("/api/runtime/teams", json={"slug": slug, "name": "Payments"}, headers=ADMIN)
        assert r.status_code == 201, r.text
        ns = f"mcp-team-{slug}"
        assert r.json()["team"]["namespace"] == ns
        assert cluster.get(Ref("v1", "Namespace", "", ns)) is not None
        assert cluster.get(Ref("v1", "ResourceQuota", ns, "team-quota")) is not None
    finally:
        await store.close()


async def test_team_creation_times_out_with_the_workflow_id(api_factory: Any, pg_dsn: str) -> None:
    """No worker picks the workflow up: the API answers 504 naming the workflow, and keeps the team row."""
    slug = f"t-{uuid.uuid4().hex[:8]}"
    api = await api_factory(1.0)
    r = await api.post("/api/runtime/teams", json={"slug": slug}, headers=ADMIN)
    assert r.status_code == 504, r.text
    body = r.json()
    assert body["error"] == "provisioning_timeout"
    assert "workflow id" in body["message"] and slug in body["message"]
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT slug FROM teams WHERE slug = %s AND deleted_at IS NULL", (slug,)).fetchone()
    assert row == (slug,)
