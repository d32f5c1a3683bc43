"""`mcp_sentinel.kube.objects.KubeCluster` (the `Cluster` of activities) on the local API server: verbs, errors."""

from __future__ import annotations

import pytest

from mcp_sentinel.kube.errors import AlreadyExists, Conflict, Invalid, KubeError, NotFound, Unavailable
from mcp_sentinel.kube.objects import KubeCluster, Ref, ensure


def test_verbs_round_trip(cluster: KubeCluster, namespace: str) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": namespace},
        "data": {"a": "1"},
    }
    assert ensure(cluster, cm) is True and ensure(cluster, cm) is False
    with pytest.raises(AlreadyExists):
        cluster.create(cm)
    ref = Ref.of(cm)
    assert cluster.merge_patch(ref, {"data": {"b": "2"}})["data"] == {"a": "1", "b": "2"}
    listed = cluster.list("v1", "ConfigMap", namespace)
    assert [(o["kind"], o["metadata"]["name"]) for o in listed] == [("ConfigMap", "c")]
    assert cluster.delete(ref) is True and cluster.delete(ref) is False
    assert cluster.get(ref) is None
    with pytest.raises(NotFound):
        cluster.merge_patch(ref, {"data": {}})


def test_rejected_objects_raise_invalid(cluster: KubeCluster, namespace: str) -> None:
    grant = {
        "apiVersion": "mcpruntime.org/v1alpha1",
        "kind": "MCPAccessGrant",
        "metadata": {"name": "g", "namespace": namespace},
        "spec": {"serverRef": {"name": "s"}, "subject": {"humanID": "u"}, "allowedSideEffects": []},
    }
    with pytest.raises(Invalid) as err:
        cluster.create(grant)
    assert err.value.status == 422


def test_unsupported_kind_and_missing_config_are_clear() -> None:
    with pytest.raises(KubeError, match="unsupported kind 'Pod'"):
        KubeCluster("/nonexistent").get(Ref("v1", "Pod", "ns", "p"))
    with pytest.raises(Unavailable, match="no Kubernetes configuration"):
        KubeCluster("/nonexistent/kubeconfig").get(Ref("v1", "ConfigMap", "ns", "c"))


def test_unreachable_api_server_is_a_retryable_cluster_error(tmp_path: object) -> None:
    from pathlib import Path

    from localstack.config import Ports

    kc = Path(str(tmp_path)) / "kubeconfig"
    port = Ports.free().kube_api
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    with pytest.raises(KubeError) as err:
        KubeCluster(str(kc), request_timeout=2).get(Ref("v1", "ConfigMap", "ns", "c"))
    assert isinstance(err.value, Unavailable)


def test_replace_is_guarded_by_resource_version(cluster: KubeCluster, namespace: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r", "namespace": namespace}, "data": {}}
    stored = cluster.create(cm)
    fresh = {**stored, "data": {"a": "1"}}
    assert cluster.replace(fresh)["data"] == {"a": "1"}
    with pytest.raises(Conflict):
        cluster.replace({**stored, "data": {"a": "2"}})  # the first read's resourceVersion is stale now


def test_list_filters_by_label(cluster: KubeCluster, namespace: str) -> None:
    for name, app in (("x", "one"), ("y", "two")):
        cluster.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
            }
        )
    listed = cluster.list("v1", "ConfigMap", namespace, label_selector="app=two")
    assert [o["metadata"]["name"] for o in listed] == ["y"]
