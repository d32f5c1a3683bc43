"""Policy rendering respects tenancy (issue 14 item 5) against the real local Kubernetes API server.

The worker's render (and the API's immediate one) take the server's team from its namespace's
`mcp-sentinel.io/team-id` label, not from the free-form `spec.teamID`, and ignore grants from other
namespaces that point at the server unless the server admits them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from functions.api.policy_sync import sync_server_policy
from mcp_sentinel.kube.objects import KubeCluster, Ref
from tests.fixtures.kube import LocalKube
from tests.helpers.workflows import grant, mcp_server
from workflows.reconcile.activities import PolicyActivities, RenderRequest

TEAM = "team-a-id"


def _team_namespace(kube_cluster: LocalKube, team: str = TEAM) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube_cluster.kube.ensure_namespace(name, labels={"mcp-sentinel.io/team-id": team})
    return name


def _policy(cluster: KubeCluster, ns: str, server: str) -> dict:
    cm = cluster.get(Ref("v1", "ConfigMap", ns, f"{server}-gateway-policy"))
    assert cm is not None
    return json.loads(cm["data"]["policy.json"])


def test_worker_render_uses_the_namespace_team_and_ignores_foreign_grants(
    cluster: KubeCluster, kube_cluster: LocalKube, namespace: str, tmp_path: Path
) -> None:
    ns_a = _team_namespace(kube_cluster)
    server = mcp_server(ns_a, "alpha")
    server["spec"]["teamID"] = "team-b-id"  # a tenant pushing its server into another team's analytics
    cluster.create(server)
    cluster.create(grant(ns_a, "own", "alpha", "u1"))
    intruder = grant(namespace, "intruder", "alpha", "u2")  # another namespace points serverRef at alpha
    intruder["spec"]["serverRef"]["namespace"] = ns_a
    cluster.create(intruder)
    acts = PolicyActivities(cluster, output_dir=tmp_path)
    out = acts.render_server(RenderRequest(ns_a, "alpha"))
    assert out.error == "" and out.changed
    doc = _policy(cluster, ns_a, "alpha")
    assert doc["server"]["team_id"] == TEAM
    assert [(g["namespace"], g["name"]) for g in doc["grants"]] == [(ns_a, "own")]
    assert all(g["team_id"] == TEAM for g in doc["grants"])

    # The server's owners admit the other namespace: now its grant counts.
    cluster.merge_patch(Ref("mcpruntime.org/v1alpha1", "MCPServer", ns_a, "alpha"),
                        {"metadata": {"annotations": {"mcp-sentinel.io/admit-grants-from": namespace}}})
    assert acts.render_server(RenderRequest(ns_a, "alpha")).changed
    doc = _policy(cluster, ns_a, "alpha")
    assert sorted(g["name"] for g in doc["grants"]) == ["intruder", "own"]


def test_api_render_uses_the_namespace_team(cluster: KubeCluster, kube_cluster: LocalKube) -> None:
    ns_a = _team_namespace(kube_cluster)
    server = mcp_server(ns_a, "beta")
    server["spec"]["teamID"] = "team-b-id"
    cluster.create(server)
    sync_server_policy(kube_cluster.kube, ns_a, "beta")
    assert _policy(cluster, ns_a, "beta")["server"]["team_id"] == TEAM
    # An unlabelled namespace (not a team namespace: the platform's own) keeps the admin-set spec.teamID.
    assert kube_cluster.kube.namespace_team(f"missing-{uuid.uuid4().hex[:6]}") is None
