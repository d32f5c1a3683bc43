"""`workflows.kube.KubeCluster` (the activities' `Cluster`) against the local API server: verbs and errors."""

from __future__ import annotations

import pytest

from workflows.cluster import AlreadyExists, ClusterError, Invalid, NotFound, Ref, ensure
from workflows.kube import KubeCluster


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
    with pytest.raises(ClusterError, match="unsupported kind 'Pod'"):
        KubeCluster("/nonexistent").get(Ref("v1", "Pod", "ns", "p"))
    with pytest.raises(ClusterError, match="kubernetes not configured"):
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
    with pytest.raises(ClusterError) as err:
        KubeCluster(str(kc), request_timeout=2).get(Ref("v1", "ConfigMap", "ns", "c"))
    assert not isinstance(err.value, (NotFound, Invalid, AlreadyExists))
