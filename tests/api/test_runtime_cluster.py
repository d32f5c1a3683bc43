"""`/api/runtime/components` in a cluster (`COMPONENTS_BACKEND=kubernetes`) against the real local API server."""

from __future__ import annotations

import uuid

from mcp_sentinel.kube.objects import KubeCluster
from tests.fixtures.kube import LocalKube
from tests.helpers.api import ADMIN_KEY, AppFactory

PART_OF = {"app.kubernetes.io/part-of": "mcp-sentinel"}


def deployment(ns: str, name: str, labels: dict[str, str], replicas: int = 1) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": "x"}]}}},
    }


async def test_cluster_components_are_the_labelled_deployments(make_api: AppFactory, kube_cluster: LocalKube) -> None:
    ns = f"rt-{uuid.uuid4().hex[:8]}"
    kube_cluster.kube.ensure_namespace(ns)
    cluster = KubeCluster(str(kube_cluster.kubeconfig))
    cluster.create(deployment(ns, "ingest", PART_OF))
    cluster.create(deployment(ns, "someone-elses", {}))
    api = await make_api(_backends={"kube": kube_cluster.api})
    r = await api.client.get("/api/runtime/components", headers={"x-api-key": ADMIN_KEY})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["backend"] == "kubernetes"
    mine = [c for c in body["components"] if c["namespace"] == ns]
    assert [(c["name"], c["kind"]) for c in mine] == [("ingest", "Deployment")]  # unlabelled ones are not ours
    assert isinstance(mine[0]["healthy"], bool) and mine[0]["ready"] == mine[0]["healthy"]
    assert mine[0]["state"] in ("healthy", "unhealthy") and "/1 ready" in mine[0]["detail"]


async def test_cluster_components_without_kubernetes_is_503(make_api: AppFactory) -> None:
    api = await make_api()
    r = await api.client.get("/api/runtime/components", headers={"x-api-key": ADMIN_KEY})
    assert r.status_code == 503 and "kubernetes" in r.json()["message"]


async def test_local_components_with_a_broken_port_map_is_503(make_api: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from localstack.api import StackComponents  # what `python -m localstack.api` injects

    table = StackComponents(str(tmp_path / "run"), "not json")
    api = await make_api(components_backend="local", sentinel_run_dir=str(tmp_path / "run"), stack_ports="not json",
                         _backends={"local_components": table})
    r = await api.client.get("/api/runtime/components", headers={"x-api-key": ADMIN_KEY})
    assert r.status_code == 503 and "SENTINEL_STACK_PORTS" in r.json()["message"], r.text
