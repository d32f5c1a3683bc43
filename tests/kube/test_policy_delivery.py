"""`mcp_sentinel.policy_delivery`: the one delivery path of the API, the reconcile and the lifecycle."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from functions.api.policy_sync import sync_server_policy
from mcp_sentinel.kube.objects import KubeCluster, Ref
from mcp_sentinel.policy_delivery import deliver_policy, policy_path, read_policy_configmap
from tests.fixtures.kube import LocalKube
from workflows.reconcile.activities import PolicyActivities, RenderRequest


def _server(ns: str, name: str, gateway: bool) -> dict[str, Any]:
    return {
        "apiVersion": "mcpruntime.org/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"image": "x/y:1", "gateway": {"enabled": gateway}, "auth": {"mode": "header"},
                 "tools": [{"name": "echo", "sideEffect": "read"}]},
    }


@pytest.fixture
def objects(kube_cluster: LocalKube) -> KubeCluster:
    return KubeCluster(api=kube_cluster.api)


def test_gateway_disabled_removes_both_targets_on_every_path(
    kube_cluster: LocalKube, kube_namespace: str, objects: KubeCluster, tmp_path: Path
) -> None:
    """Decided behaviour: no gateway, no delivered policy (ConfigMap and local file both removed)."""
    ns, out = kube_namespace, tmp_path / "policies"
    objects.create(_server(ns, "srv", gateway=True))
    first = deliver_policy(objects, ns, "srv", output_dir=out)
    assert first.changed and first.revision
    assert read_policy_configmap(objects, ns, "srv") is not None and policy_path(out, ns, "srv").exists()

    server_ref = Ref("mcpruntime.org/v1alpha1", "MCPServer", ns, "srv")
    objects.merge_patch(server_ref, {"spec": {"gateway": {"enabled": False}}})
    # The reconcile activity, the API helper and the function itself agree, and are idempotent.
    outcome = PolicyActivities(objects, output_dir=out).render_server(RenderRequest(ns, "srv"))
    assert outcome.changed and not outcome.error
    assert read_policy_configmap(objects, ns, "srv") is None and not policy_path(out, ns, "srv").exists()
    api = sync_server_policy(kube_cluster.kube, ns, "srv", output_dir=out)
    assert (api.removed, api.gateway, api.changed) == (False, False, False)
    again = PolicyActivities(objects, output_dir=out).render_server(RenderRequest(ns, "srv"))
    assert not again.changed and not again.error


def test_api_and_reconcile_deliver_identical_text(
    kube_cluster: LocalKube, kube_namespace: str, objects: KubeCluster, tmp_path: Path
) -> None:
    ns = kube_namespace
    objects.create(_server(ns, "same", gateway=True))
    api = sync_server_policy(kube_cluster.kube, ns, "same", output_dir=tmp_path)
    text = read_policy_configmap(objects, ns, "same")
    rec = PolicyActivities(objects, output_dir=tmp_path).render_server(RenderRequest(ns, "same"))
    assert api.changed and not rec.changed  # byte-stable: the second path finds nothing to write
    assert read_policy_configmap(objects, ns, "same") == text == policy_path(tmp_path, ns, "same").read_text()


def test_missing_server_touches_nothing(kube_namespace: str, objects: KubeCluster, tmp_path: Path) -> None:
    sync = deliver_policy(objects, kube_namespace, f"ghost-{uuid.uuid4().hex[:6]}", output_dir=tmp_path)
    assert (sync.found, sync.changed, sync.removed) == (False, False, False)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "a\\b", "", "x\x00"])
def test_policy_path_refuses_escaping_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="unsafe policy path component"):
        policy_path(tmp_path, bad, "srv")
    with pytest.raises(ValueError, match="unsafe policy path component"):
        policy_path(tmp_path, "ns", bad)
