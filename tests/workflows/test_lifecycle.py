"""ServerLifecycle on real Temporal and the local Kubernetes API server: create, update, delete, roll back."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from localstack.kube_apiserver.admission import ROLLOUT_ANNOTATION
from mcp_sentinel.kube.objects import KubeCluster, Obj, Ref
from mcp_sentinel.kube.server_render import RenderSettings
from mcp_sentinel.policy import parse_document
from tests.helpers.lifecycle import BASE, SERVER, image_server, settings
from workflows.client import ensure_server_reconcile_schedule, request_server_reconcile
from workflows.lifecycle.activities import FAILED_HASH_ANNOTATION, LAST_GOOD_ANNOTATION
from workflows.lifecycle.workflows import LifecycleResult, ServerReconcile, lifecycle_workflow_id
from workflows.worker import WorkerSettings, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")



@dataclass
class Lifecycle:
    client: Client
    task_queue: str

    async def reconcile(self, namespace: str, name: str) -> LifecycleResult:
        """What the API does on create/update/delete, then wait for that run."""
        handle = await request_server_reconcile(self.client, namespace, name, task_queue=self.task_queue)
        return await handle.result()


@pytest_asyncio.fixture(loop_scope="session")
async def lifecycle(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster
) -> AsyncIterator[Lifecycle]:
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, build_activities(settings(), cluster=cluster), ex):
            yield Lifecycle(temporal_env.client, task_queue)


@pytest_asyncio.fixture(loop_scope="session")
async def skipping(
    time_skipping_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster
) -> AsyncIterator[Lifecycle]:
    """A time-skipping server: the rollout's progress deadline passes without waiting for it."""
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(time_skipping_env.client, task_queue, build_activities(settings(), cluster=cluster), ex):
            yield Lifecycle(time_skipping_env.client, task_queue)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def get(cluster: KubeCluster, api_version: str, kind: str, namespace: str, name: str) -> Obj:
    obj = cluster.get(Ref(api_version, kind, namespace, name))
    assert obj is not None, f"{kind} {namespace}/{name} missing"
    return obj


def conditions(server: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in server["status"]["conditions"]}


def containers(dep: Obj) -> dict[str, Obj]:
    return {c["name"]: c for c in dep["spec"]["template"]["spec"]["containers"]}


async def test_create_update_and_delete_render_every_object_and_status(
    lifecycle: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    created = cluster.create(image_server(namespace, "pay"))
    uid = created["metadata"]["uid"]
    first = await lifecycle.reconcile(namespace, "pay")
    assert (first.outcome, first.passes) == ("ready", 1)

    dep = get(cluster, "apps/v1", "Deployment", namespace, "pay")
    pod = dep["spec"]["template"]["spec"]
    by_name = containers(dep)
    assert set(by_name) == {"mcp-server", "mcp-gateway"}
    assert by_name["mcp-server"]["image"] == "ghcr.io/acme/pay:1.0.0"
    assert "ports" not in by_name["mcp-server"]  # loopback only: the gateway is the one way in
    assert {e["name"]: e.get("value") for e in by_name["mcp-server"]["env"]}["HOST"] == "127.0.0.1"
    gw_env = {e["name"]: e for e in by_name["mcp-gateway"]["env"]}
    assert gw_env["UPSTREAM_URL"]["value"] == "http://127.0.0.1:8088"
    assert gw_env["MCP_SERVER_NAMESPACE"]["value"] == namespace
    assert gw_env["ANALYTICS_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "pay-ingest-credential"
    assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in by_name.values())
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "pay-gateway-policy"
    assert volumes["audit-spool"]["emptyDir"]["sizeLimit"] == "256Mi"
    assert dep["spec"]["template"]["metadata"]["labels"]["mcp-sentinel.io/public-gateway"] == "true"

    svc = get(cluster, "v1", "Service", namespace, "pay")
    assert [p["name"] for p in svc["spec"]["ports"]] == ["gateway", "inventory"]
    ing = get(cluster, "networking.k8s.io/v1", "Ingress", namespace, "pay")
    path = ing["spec"]["rules"][0]["http"]["paths"][0]
    assert path["path"] == "/pay(/|$)(.*)" and path["backend"]["service"]["port"]["number"] == 8091
    assert ing["spec"]["rules"][0]["host"] == "sentinel.example.com"
    cm = get(cluster, "v1", "ConfigMap", namespace, "pay-gateway-policy")
    revision = parse_document(cm["data"]["policy.json"]).revision
    for obj in (dep, svc, ing, cm):
        assert obj["metadata"]["ownerReferences"][0]["uid"] == uid

    server = get(cluster, SERVER, "MCPServer", namespace, "pay")
    status = server["status"]
    assert status["observedGeneration"] == server["metadata"]["generation"]
    assert status["url"] == f"{BASE}/pay/mcp"
    assert status["policyRevision"] == revision
    conds = conditions(server)
    assert {t: c["status"] for t, c in conds.items()} == {"Ready": "True", "GatewayReady": "True",
                                                          "PolicyDelivered": "True"}
    assert revision in conds["PolicyDelivered"]["message"]
    assert all(c["lastTransitionTime"] for c in conds.values())

    # A quiet pass changes nothing: same Deployment generation, same transition times.
    again = await lifecycle.reconcile(namespace, "pay")
    assert again.outcome == "ready"
    quiet = get(cluster, "apps/v1", "Deployment", namespace, "pay")
    assert quiet["metadata"]["generation"] == dep["metadata"]["generation"]
    assert conditions(get(cluster, SERVER, "MCPServer", namespace, "pay")) == conds

    # Update: a new image tag is a new rollout, recorded as the last good revision once available.
    cluster.merge_patch(Ref(SERVER, "MCPServer", namespace, "pay"), {"spec": {"imageTag": "1.1.0", "replicas": 2}})
    updated = await lifecycle.reconcile(namespace, "pay")
    assert updated.outcome == "ready"
    dep2 = get(cluster, "apps/v1", "Deployment", namespace, "pay")
    assert containers(dep2)["mcp-server"]["image"] == "ghcr.io/acme/pay:1.1.0"
    assert dep2["spec"]["replicas"] == 2 and dep2["metadata"]["generation"] > dep["metadata"]["generation"]
    good = json.loads(dep2["metadata"]["annotations"][LAST_GOOD_ANNOTATION])
    assert good["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/pay:1.1.0"
    server = get(cluster, SERVER, "MCPServer", namespace, "pay")
    assert server["status"]["observedGeneration"] == server["metadata"]["generation"]

    # Drift: a hand edit of the Deployment is put back by the next pass.
    edited = {**dep2, "spec": {**dep2["spec"], "replicas": 5}}
    cluster.replace(edited)
    await lifecycle.reconcile(namespace, "pay")
    assert get(cluster, "apps/v1", "Deployment", namespace, "pay")["spec"]["replicas"] == 2

    # Header mode: identity headers are trusted, so the public route is withdrawn.
    cluster.merge_patch(Ref(SERVER, "MCPServer", namespace, "pay"), {"spec": {"auth": {"mode": "header"}}})
    await lifecycle.reconcile(namespace, "pay")
    assert cluster.get(Ref("networking.k8s.io/v1", "Ingress", namespace, "pay")) is None
    assert get(cluster, SERVER, "MCPServer", namespace, "pay")["status"]["url"] == ""

    # Delete: the pass finds the server gone and nothing rendered for it remains.
    cluster.delete(Ref(SERVER, "MCPServer", namespace, "pay"))
    gone = await lifecycle.reconcile(namespace, "pay")
    assert gone.outcome == "deleted"
    for api_version, kind, name in (("apps/v1", "Deployment", "pay"), ("v1", "Service", "pay"),
                                    ("v1", "ConfigMap", "pay-gateway-policy")):
        assert cluster.get(Ref(api_version, kind, namespace, name)) is None


async def test_remote_server_gets_a_gateway_only_deployment(
    lifecycle: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    spec = image_server(namespace, "far")["spec"]
    del spec["image"], spec["imageTag"]
    spec["gateway"] = {"enabled": True, "upstreamURL": "https://mcp.partner.example/mcp"}
    cluster.create({"apiVersion": SERVER, "kind": "MCPServer", "metadata": {"name": "far", "namespace": namespace},
                    "spec": spec})
    assert (await lifecycle.reconcile(namespace, "far")).outcome == "ready"
    by_name = containers(get(cluster, "apps/v1", "Deployment", namespace, "far"))
    assert set(by_name) == {"mcp-gateway"}
    env = {e["name"]: e.get("value") for e in by_name["mcp-gateway"]["env"]}
    assert env["UPSTREAM_URL"] == "https://mcp.partner.example/mcp"
    assert cluster.get(Ref("v1", "ConfigMap", namespace, "far-gateway-policy")) is not None


async def test_remote_server_without_its_gateway_is_reported_invalid(
    lifecycle: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    # The CRD admits it (an upstream URL, no image) but a remote server is only ever run behind its gateway.
    cluster.create({"apiVersion": SERVER, "kind": "MCPServer", "metadata": {"name": "void", "namespace": namespace},
                    "spec": {"gateway": {"enabled": False, "upstreamURL": "https://mcp.partner.example/mcp"}}})
    result = await lifecycle.reconcile(namespace, "void")
    assert result.outcome == "invalid" and "needs gateway.enabled" in result.message
    ready = conditions(get(cluster, SERVER, "MCPServer", namespace, "void"))["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert cluster.get(Ref("apps/v1", "Deployment", namespace, "void")) is None


async def test_objects_the_api_server_refuses_fail_the_pass_without_retrying(
    lifecycle: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    # A valid MCPServer name that is too long for a label value: every rendered object is refused (422).
    name = "x" * 70
    cluster.create(image_server(namespace, name))
    result = await lifecycle.reconcile(namespace, name)
    assert result.outcome == "failed" and "apply failed" in result.message
    ready = conditions(get(cluster, SERVER, "MCPServer", namespace, name))["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert cluster.get(Ref("apps/v1", "Deployment", namespace, name)) is None


async def test_gateway_disabled_server_runs_bare_and_is_never_public(
    lifecycle: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    cluster.create(image_server(namespace, "bare", gateway={"enabled": False}))
    await lifecycle.reconcile(namespace, "bare")
    by_name = containers(get(cluster, "apps/v1", "Deployment", namespace, "bare"))
    assert set(by_name) == {"mcp-server"}
    assert cluster.get(Ref("networking.k8s.io/v1", "Ingress", namespace, "bare")) is None
    assert cluster.get(Ref("v1", "ConfigMap", namespace, "bare-gateway-policy")) is None
    conds = conditions(get(cluster, SERVER, "MCPServer", namespace, "bare"))
    assert conds["PolicyDelivered"]["reason"] == "GatewayDisabled" and conds["GatewayReady"]["status"] == "False"


async def test_failed_rollout_compensates_back_to_the_last_good_revision(
    skipping: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    cluster.create(image_server(namespace, "roll"))
    assert (await skipping.reconcile(namespace, "roll")).outcome == "ready"
    dep_ref = Ref("apps/v1", "Deployment", namespace, "roll")
    # The local API server keeps a held Deployment's new pods unavailable (a crash-looping image).
    cluster.merge_patch(dep_ref, {"metadata": {"annotations": {ROLLOUT_ANNOTATION: "hold"}}})
    cluster.merge_patch(Ref(SERVER, "MCPServer", namespace, "roll"), {"spec": {"imageTag": "2.0.0-broken"}})

    result = await skipping.reconcile(namespace, "roll")
    assert result.outcome == "rolled-back", result
    assert "not available after 60s" in result.message and "rolled back to revision" in result.message
    dep = get(cluster, "apps/v1", "Deployment", namespace, "roll")
    assert containers(dep)["mcp-server"]["image"] == "ghcr.io/acme/pay:1.0.0"
    failed = dep["metadata"]["annotations"][FAILED_HASH_ANNOTATION]
    ready = conditions(get(cluster, SERVER, "MCPServer", namespace, "roll"))["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "RolloutFailed")

    # The periodic repair does not retry the known-bad revision until the server changes.
    again = await skipping.reconcile(namespace, "roll")
    assert again.outcome == "rolled-back" and "stays rolled back" in again.message
    dep = get(cluster, "apps/v1", "Deployment", namespace, "roll")
    assert containers(dep)["mcp-server"]["image"] == "ghcr.io/acme/pay:1.0.0"
    assert dep["metadata"]["annotations"][FAILED_HASH_ANNOTATION] == failed

    # A fixed image is a new revision: rolled out (the hold lifted) and recorded as good.
    cluster.merge_patch(dep_ref, {"metadata": {"annotations": {ROLLOUT_ANNOTATION: None}}})
    cluster.merge_patch(Ref(SERVER, "MCPServer", namespace, "roll"), {"spec": {"imageTag": "2.0.1"}})
    assert (await skipping.reconcile(namespace, "roll")).outcome == "ready"
    dep = get(cluster, "apps/v1", "Deployment", namespace, "roll")
    assert containers(dep)["mcp-server"]["image"] == "ghcr.io/acme/pay:2.0.1"
    assert FAILED_HASH_ANNOTATION not in dep["metadata"]["annotations"]


async def test_first_rollout_failure_has_nothing_to_roll_back_to(
    skipping: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    server = image_server(namespace, "new")
    cluster.create(server)
    # Pre-create the Deployment held, as if the image could never start.
    cluster.create({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "new", "namespace": namespace, "annotations": {ROLLOUT_ANNOTATION: "hold"}},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"x": "y"}},
                             "template": {"metadata": {"labels": {"x": "y"}}, "spec": {"containers": []}}}})
    result = await skipping.reconcile(namespace, "new")
    assert result.outcome == "rolled-back" and "no earlier revision became available" in result.message


async def test_periodic_pass_reconciles_every_server(
    lifecycle: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    cluster.create(image_server(namespace, "p1"))
    cluster.create(image_server(namespace, "p2", publicPathPrefix="p2"))
    result = await lifecycle.client.execute_workflow(
        ServerReconcile.run, id=f"server-reconcile-{uuid.uuid4()}", task_queue=lifecycle.task_queue
    )
    mine = {k: v for k, v in result.outcomes.items() if f"/{namespace}/" in k}
    assert mine == {lifecycle_workflow_id(namespace, "p1"): "ready", lifecycle_workflow_id(namespace, "p2"): "ready"}
    assert cluster.get(Ref("apps/v1", "Deployment", namespace, "p2")) is not None


async def test_server_reconcile_schedule_is_created_once_and_updated(lifecycle: Lifecycle) -> None:
    from temporalio.client import ScheduleActionStartWorkflow

    sid = f"server-reconcile-{uuid.uuid4().hex[:6]}"
    client, queue = lifecycle.client, lifecycle.task_queue
    assert await ensure_server_reconcile_schedule(client, timedelta(hours=1), task_queue=queue, schedule_id=sid) == sid
    await ensure_server_reconcile_schedule(client, timedelta(minutes=5), task_queue=queue, schedule_id=sid)
    handle = client.get_schedule_handle(sid)
    try:
        desc = await handle.describe()
        assert desc.schedule.spec.intervals[0].every == timedelta(minutes=5)
        action = desc.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == ("ServerReconcile", queue)
    finally:
        await handle.delete()


async def test_requests_during_a_pass_coalesce_into_one_more_pass(
    lifecycle: Lifecycle, cluster: KubeCluster, namespace: str
) -> None:
    """Signal-with-start: an update arriving mid-rollout is one more pass of the same run, never a second run."""
    cluster.create(image_server(namespace, "busy"))
    assert (await lifecycle.reconcile(namespace, "busy")).outcome == "ready"
    dep_ref = Ref("apps/v1", "Deployment", namespace, "busy")
    cluster.merge_patch(dep_ref, {"metadata": {"annotations": {ROLLOUT_ANNOTATION: "hold"}}})
    server_ref = Ref(SERVER, "MCPServer", namespace, "busy")
    cluster.merge_patch(server_ref, {"spec": {"imageTag": "1.1.0"}})
    first = await request_server_reconcile(lifecycle.client, namespace, "busy", task_queue=lifecycle.task_queue)
    for _ in range(600):  # the first pass has rolled the new image and now waits for it (held)
        image = containers(get(cluster, "apps/v1", "Deployment", namespace, "busy"))["mcp-server"]["image"]
        if image.endswith("1.1.0"):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the first pass never rolled out 1.1.0")
    cluster.merge_patch(server_ref, {"spec": {"replicas": 3}})
    second = await request_server_reconcile(lifecycle.client, namespace, "busy", task_queue=lifecycle.task_queue)
    assert second.result_run_id == first.result_run_id
    cluster.merge_patch(dep_ref, {"metadata": {"annotations": {ROLLOUT_ANNOTATION: None}}})
    result = await first.result()
    assert (result.outcome, result.passes) == ("ready", 2)
    assert get(cluster, "apps/v1", "Deployment", namespace, "busy")["spec"]["replicas"] == 3


async def test_a_rollback_is_counted_in_the_worker_metrics(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, namespace: str, temporal_metrics_url: str
) -> None:
    quick = WorkerSettings(render=RenderSettings(progress_deadline_seconds=1))  # one 5 s poll, then rolled back
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, build_activities(quick, cluster=cluster), ex):
            life = Lifecycle(temporal_env.client, task_queue)
            cluster.create(image_server(namespace, "counted"))
            assert (await life.reconcile(namespace, "counted")).outcome == "ready"
            dep_ref = Ref("apps/v1", "Deployment", namespace, "counted")
            cluster.merge_patch(dep_ref, {"metadata": {"annotations": {ROLLOUT_ANNOTATION: "hold"}}})
            cluster.merge_patch(Ref(SERVER, "MCPServer", namespace, "counted"), {"spec": {"imageTag": "bad"}})
            assert (await life.reconcile(namespace, "counted")).outcome == "rolled-back"
    metrics = await asyncio.to_thread(scrape, temporal_metrics_url)
    line = next(ln for ln in metrics.splitlines()
                if ln.startswith("sentinel_server_rollbacks{") and f'namespace="{namespace}"' in ln)
    assert 'restored="true"' in line and 'server="counted"' in line and line.rsplit(" ", 1)[1] == "1"
