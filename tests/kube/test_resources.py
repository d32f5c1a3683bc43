"""The kube access layer: typed helpers, the policy ConfigMap, error mapping, client loading, CRD install."""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s
from kubernetes.config import ConfigException

from localstack.config import Ports
from localstack.kube_apiserver.kubeconfig import write_kubeconfig
from mcp_sentinel.kube import errors
from mcp_sentinel.kube.client import install_crds, load_kube
from mcp_sentinel.kube.resources import MANAGED_BY, SentinelKube
from mcp_sentinel.policy_delivery import delete_policy_configmap, read_policy_configmap, write_policy_configmap


def server(name: str = "srv") -> dict:
    return {"metadata": {"name": name}, "spec": {"image": "img", "tools": [{"name": "t", "sideEffect": "read"}]}}


def grant(name: str = "g", server_name: str = "srv") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"serverRef": {"name": server_name}, "subject": {"humanID": "h"}, "allowedSideEffects": ["read"]},
    }


def test_custom_resource_crud_and_status(kube_cluster, kube_namespace) -> None:
    kube = kube_cluster.kube
    made = kube.servers.create(kube_namespace, server())
    assert made["kind"] == "MCPServer" and made["metadata"]["namespace"] == kube_namespace
    assert [s["metadata"]["name"] for s in kube.servers.list(kube_namespace)] == ["srv"]
    made["spec"]["description"] = "replaced"
    replaced = kube.servers.replace(kube_namespace, "srv", made)
    assert replaced["spec"]["description"] == "replaced"
    patched = kube.servers.patch(kube_namespace, "srv", {"metadata": {"labels": {"tier": "gold"}}})
    assert patched["metadata"]["labels"] == {"tier": "gold"}
    jp = kube.servers.patch(kube_namespace, "srv", [{"op": "add", "path": "/spec/teamID", "value": "t1"}])
    assert jp["spec"]["teamID"] == "t1"
    assert [s["metadata"]["name"] for s in kube.servers.list(label_selector="tier=gold")] == ["srv"]
    status = kube.servers.patch_status(kube_namespace, "srv", {"phase": "Ready", "policyReady": True})
    assert status["status"] == {"phase": "Ready", "policyReady": True}
    kube.servers.delete(kube_namespace, "srv")
    with pytest.raises(errors.NotFound):
        kube.servers.get(kube_namespace, "srv")


def test_grants_and_sessions_round_trip(kube_cluster, kube_namespace) -> None:
    kube = kube_cluster.kube
    kube.grants.create(kube_namespace, grant())
    kube.sessions.create(
        kube_namespace,
        {"metadata": {"name": "s1"}, "spec": {"serverRef": {"name": "srv"}, "subject": {"agentID": "a"}}},
    )
    assert kube.grants.patch(kube_namespace, "g", {"spec": {"disabled": True}})["spec"]["disabled"] is True
    assert kube.sessions.patch(kube_namespace, "s1", {"spec": {"revoked": True}})["spec"]["revoked"] is True
    assert [g["metadata"]["name"] for g in kube.grants.list(kube_namespace)] == ["g"]
    kube.sessions.delete(kube_namespace, "s1")
    assert kube.sessions.list(kube_namespace) == []


def test_errors_map_onto_the_exception_tree(kube_cluster, kube_namespace) -> None:
    kube = kube_cluster.kube
    made = kube.servers.create(kube_namespace, server())
    with pytest.raises(errors.AlreadyExists) as exists:
        kube.servers.create(kube_namespace, server())
    assert isinstance(exists.value, errors.Conflict) and exists.value.status == 409
    kube.servers.patch(kube_namespace, "srv", {"spec": {"image": "other"}})
    with pytest.raises(errors.Conflict) as stale:
        kube.servers.replace(kube_namespace, "srv", made)
    assert not isinstance(stale.value, errors.AlreadyExists)
    with pytest.raises(errors.Invalid) as bad:
        kube.grants.create(kube_namespace, {"metadata": {"name": "bad"}, "spec": {"subject": {}}})
    fields = {c["field"] for c in bad.value.causes}
    assert {"spec.serverRef", "spec.allowedSideEffects"} <= fields
    with pytest.raises(errors.NotFound):
        kube.grants.delete(kube_namespace, "missing")


def test_policy_configmap_is_labelled_owned_and_not_rewritten_when_unchanged(kube_cluster, kube_namespace) -> None:
    kube = kube_cluster.kube
    owner = kube.servers.create(kube_namespace, server("pay"))
    first = write_policy_configmap(kube.objects, kube_namespace, "pay", '{"v": 1}', owner)
    meta = first["metadata"]
    assert meta["name"] == "pay-gateway-policy"
    assert meta["labels"] == {"app": "pay", "app.kubernetes.io/managed-by": MANAGED_BY}
    (ref,) = meta["ownerReferences"]
    assert ref["uid"] == owner["metadata"]["uid"] and ref["kind"] == "MCPServer" and ref["controller"] is True
    again = write_policy_configmap(kube.objects, kube_namespace, "pay", '{"v": 1}', owner)
    assert again["metadata"]["resourceVersion"] == meta["resourceVersion"]
    changed = write_policy_configmap(kube.objects, kube_namespace, "pay", '{"v": 2}', owner)
    assert int(changed["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert read_policy_configmap(kube.objects, kube_namespace, "pay") == '{"v": 2}'
    # Deleting the owning server garbage-collects its policy.
    kube.servers.delete(kube_namespace, "pay")
    assert read_policy_configmap(kube.objects, kube_namespace, "pay") is None
    assert delete_policy_configmap(kube.objects, kube_namespace, "pay") is False


def test_policy_configmap_needs_a_stored_owner(kube_cluster, kube_namespace) -> None:
    with pytest.raises(ValueError, match="uid"):
        write_policy_configmap(kube_cluster.kube.objects, kube_namespace, "x", "{}", {"metadata": {"name": "x"}})


def test_install_crds_is_idempotent(kube_cluster) -> None:
    names = install_crds(kube_cluster.api)
    assert sorted(names) == [
        "mcpaccessgrants.mcpruntime.org",
        "mcpagentsessions.mcpruntime.org",
        "mcpservers.mcpruntime.org",
    ]
    assert install_crds(kube_cluster.api) == names
    # The demo objects survive a re-install (the CRD is replaced, not recreated).
    assert len(kube_cluster.kube.servers.list("mcp-servers")) == 2


def test_unreachable_server_is_unavailable(tmp_path) -> None:
    port = Ports.free().kube_api
    write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}", "t")
    api = load_kube({"KUBECONFIG": str(tmp_path / "kc")})
    api.configuration.retries = 0
    with pytest.raises(errors.Unavailable):
        SentinelKube(api).servers.list("x")


def test_wrong_token_is_forbidden(kube_cluster, tmp_path) -> None:
    write_kubeconfig(tmp_path / "kc", kube_cluster.url, "wrong-token")
    with pytest.raises(errors.Forbidden) as info:
        SentinelKube(load_kube({"KUBECONFIG": str(tmp_path / "kc")})).servers.list("mcp-servers")
    assert info.value.status == 401


def test_missing_kubeconfig_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(errors.Unavailable, match="does not exist"):
        load_kube({"KUBECONFIG": str(tmp_path / "absent"), "HOME": str(tmp_path)})


def test_in_cluster_config_is_used_when_running_in_a_pod() -> None:
    # Outside a pod the service-account token file is absent: the in-cluster loader (not the
    # kubeconfig path) must be the one that complains.
    with pytest.raises(ConfigException, match="token"):
        load_kube({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})


def test_status_bodies_survive_mapping() -> None:
    exc = k8s.ApiException(status=422, reason="Unprocessable Entity")
    exc.body = json.dumps(
        {"kind": "Status", "reason": "Invalid", "message": "bad", "details": {"causes": [{"field": "f"}]}}
    )
    mapped = errors.from_api_exception(exc)
    assert isinstance(mapped, errors.Invalid) and mapped.causes == [{"field": "f"}] and mapped.message == "bad"
    assert isinstance(errors.from_api_exception(k8s.ApiException(status=503)), errors.Unavailable)
    assert type(errors.from_api_exception(k8s.ApiException(status=400))) is errors.KubeError
