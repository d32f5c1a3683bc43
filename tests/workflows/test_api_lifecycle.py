"""The API starts the ServerLifecycle workflow on server create/update/delete (real API app, Temporal, Kubernetes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from functions.api.app import create_app
from mcp_sentinel.kube.objects import KubeCluster, Ref
from tests.fixtures.kube import LocalKube
from tests.helpers.api import ADMIN_KEY, base_settings, serve
from workflows.lifecycle.workflows import TASK_QUEUE as LIFECYCLE_QUEUE
from workflows.lifecycle.workflows import LifecycleResult
from workflows.worker import WorkerSettings, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADMIN = {"x-api-key": ADMIN_KEY}


@pytest_asyncio.fixture(loop_scope="session")
async def api_factory(pg_dsn: str, kube_cluster: LocalKube) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:

        async def build(temporal: Any) -> httpx.AsyncClient:
            settings = base_settings(pg_dsn, temporal_address="configured" if temporal else "")
            app = create_app(settings, kube=kube_cluster.api, **({"temporal": temporal} if temporal else {}))
            return await stack.enter_async_context(serve(app))

        yield build


def body(ns: str, name: str, tag: str) -> dict[str, Any]:
    return {"namespace": ns, "name": name, "image": "ghcr.io/acme/echo", "imageTag": tag, "update": True,
            "gateway": {"enabled": True}, "tools": [{"name": "echo", "sideEffect": "read"}]}


async def test_server_create_update_and_delete_drive_the_lifecycle(
    api_factory: Any, temporal_env: WorkflowEnvironment, cluster: KubeCluster, namespace: str
) -> None:
    name = f"s-{uuid.uuid4().hex[:6]}"
    client = temporal_env.client
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(client, LIFECYCLE_QUEUE, build_activities(WorkerSettings(), cluster=cluster), ex):
            api = await api_factory(client)

            async def settled(response: httpx.Response) -> LifecycleResult:
                assert response.status_code == 200, response.text
                lifecycle = response.json()["lifecycle"]
                assert lifecycle["state"] == "requested"
                handle = client.get_workflow_handle(lifecycle["workflowId"], result_type=LifecycleResult)
                return await handle.result()

            assert (await settled(await api.post("/api/runtime/servers", json=body(namespace, name, "1"),
                                                 headers=ADMIN))).outcome == "ready"
            dep = cluster.get(Ref("apps/v1", "Deployment", namespace, name))
            assert dep is not None
            assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/echo:1"
            shown = (await api.get(f"/api/runtime/servers/{namespace}/{name}", headers=ADMIN)).json()
            status = shown.get("server", shown)["status"]
            assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"

            await settled(await api.post("/api/runtime/servers", json=body(namespace, name, "2"), headers=ADMIN))
            dep = cluster.get(Ref("apps/v1", "Deployment", namespace, name))
            assert dep is not None
            assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/echo:2"

            r = await api.delete(f"/api/runtime/servers/{namespace}/{name}", headers=ADMIN)
            assert r.status_code == 200, r.text
            handle = client.get_workflow_handle(f"server-lifecycle/{namespace}/{name}", result_type=LifecycleResult)
            assert (await handle.result()).outcome == "deleted"
            assert cluster.get(Ref("apps/v1", "Deployment", namespace, name)) is None


async def test_without_temporal_the_api_still_applies_servers(
    api_factory: Any, cluster: KubeCluster, namespace: str
) -> None:
    """Documented fallback: the object and its policy are written; no workflow, nothing rolled out by the API."""
    api = await api_factory(None)
    r = await api.post("/api/runtime/servers", json=body(namespace, "plain", "1"), headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["lifecycle"] == {"state": "not-configured"}
    assert cluster.get(Ref("v1", "ConfigMap", namespace, "plain-gateway-policy")) is not None
    assert cluster.get(Ref("apps/v1", "Deployment", namespace, "plain")) is None
