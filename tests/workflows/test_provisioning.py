"""ProvisionTeam on real Temporal, a real Kubernetes API server and the real identity store (Postgres)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from temporalio.testing import WorkflowEnvironment

from mcp_sentinel.identity.store import IdentityStore
from mcp_sentinel.kube.objects import KubeCluster, Ref
from tests.helpers.workflows import FailingAt
from workflows.client import TemporalTeamProvisioner, WorkflowFailed, start_provision_team
from workflows.provisioning.teams import IdentityTeamStore
from workflows.worker import WorkerSettings, build_activities, new_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")

TEAM_OBJECTS = [
    Ref("v1", "ResourceQuota", "{ns}", "team-quota"),
    Ref("v1", "LimitRange", "{ns}", "team-limits"),
    Ref("networking.k8s.io/v1", "NetworkPolicy", "{ns}", "default-deny-ingress"),
    Ref("networking.k8s.io/v1", "NetworkPolicy", "{ns}", "allow-gateway-and-ingress"),
    Ref("rbac.authorization.k8s.io/v1", "RoleBinding", "{ns}", "team-owners"),
]


def objects_in(cluster: KubeCluster, ns: str) -> dict[str, bool]:
    found = {f"Namespace {ns}": cluster.get(Ref("v1", "Namespace", "", ns)) is not None}
    for r in TEAM_OBJECTS:
        ref = Ref(r.api_version, r.kind, ns, r.name)
        found[str(ref)] = cluster.get(ref) is not None
    return found






def slug() -> str:
    return f"team-{uuid.uuid4().hex[:8]}"


async def test_provisions_every_step_and_is_idempotent(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, identity_store: IdentityStore
) -> None:
    owner = await identity_store.create_user(f"{uuid.uuid4().hex[:6]}@example.com", "user", None)
    acts = build_activities(WorkerSettings(), cluster=cluster, teams=IdentityTeamStore(store=identity_store))
    s = slug()
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            first = await start_provision_team(temporal_env.client, s, "Payments", owner.id, task_queue=task_queue)
            again = await start_provision_team(temporal_env.client, s, "Payments", owner.id, task_queue=task_queue)

    ns = f"mcp-team-{s}"
    assert first.namespace == ns
    assert all(objects_in(cluster, ns).values()), objects_in(cluster, ns)
    assert first.created[0] == "team record" and f"Namespace {ns}" in first.created
    team = await identity_store.get_team(s)
    assert team is not None and team.id == first.team_id and team.namespace == ns
    members = await identity_store.list_members(first.team_id)
    assert [(m.user_id, m.role) for m in members] == [(owner.id, "owner")]
    # The second run found everything in place: same team, nothing created.
    assert again.team_id == first.team_id
    assert again.created == [] and len(again.reused) == len(first.created) + len(first.reused)
    netpol = cluster.get(Ref("networking.k8s.io/v1", "NetworkPolicy", ns, "allow-gateway-and-ingress"))
    assert netpol is not None
    sources = netpol["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mcp-sentinel"}}} in sources


async def test_failure_rolls_back_every_step_this_run_created(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, identity_store: IdentityStore
) -> None:
    owner = await identity_store.create_user(f"{uuid.uuid4().hex[:6]}@example.com", "user", None)
    teams = IdentityTeamStore(store=identity_store)
    failing = FailingAt(teams, cluster)
    acts = build_activities(WorkerSettings(), cluster=cluster, teams=teams)
    acts = [a for a in acts if getattr(a, "__name__", "") != "apply_object"] + [failing.apply_object]
    s = slug()
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            with pytest.raises(WorkflowFailed) as err:
                await start_provision_team(temporal_env.client, s, "Billing", owner.id, task_queue=task_queue)

    assert err.value.kind == "ProvisioningFailed"
    assert "RoleBinding" in str(err.value) and "admission webhook denied" in str(err.value)
    assert err.value.workflow_id == f"provision-team-{s}"
    assert not any(objects_in(cluster, f"mcp-team-{s}").values())
    assert await identity_store.get_team(s) is None
    # The slug is free again: a healthy retry succeeds from scratch.
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(
            temporal_env.client, task_queue, build_activities(WorkerSettings(), cluster=cluster, teams=teams), ex
        ):
            ok = await start_provision_team(temporal_env.client, s, "Billing", owner.id, task_queue=task_queue)
    assert all(objects_in(cluster, ok.namespace).values())


async def test_existing_objects_are_not_removed_by_a_failed_run(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, identity_store: IdentityStore
) -> None:
    owner = await identity_store.create_user(f"{uuid.uuid4().hex[:6]}@example.com", "user", None)
    s = slug()
    ns = f"mcp-team-{s}"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})  # made by someone else
    teams = IdentityTeamStore(store=identity_store)
    failing = FailingAt(teams, cluster)
    failing.fail_kind = "LimitRange"
    acts = [a for a in build_activities(WorkerSettings(), cluster=cluster, teams=teams) if a.__name__ != "apply_object"]
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, [*acts, failing.apply_object], ex):
            with pytest.raises(WorkflowFailed) as err:
                await start_provision_team(temporal_env.client, s, "Ops", owner.id, task_queue=task_queue)
    assert "rolled back: ResourceQuota" in str(err.value)
    found = objects_in(cluster, ns)
    assert found[f"Namespace {ns}"] is True  # reused, so not ours to delete
    assert found[f"ResourceQuota {ns}/team-quota"] is False
    assert await identity_store.get_team(s) is None


async def test_slug_taken_by_another_team_fails_without_touching_it(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, identity_store: IdentityStore
) -> None:
    s = slug()
    existing = await identity_store.create_team(s, "Original", None)
    acts = build_activities(WorkerSettings(), cluster=cluster, teams=IdentityTeamStore(store=identity_store))
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            with pytest.raises(WorkflowFailed) as err:
                await start_provision_team(temporal_env.client, s, "Impostor", str(uuid.uuid4()), task_queue=task_queue)
    assert "already used by team 'Original'" in str(err.value)
    assert "rolled back: nothing" in str(err.value)
    assert (await identity_store.get_team(s)) == existing


async def test_unknown_creator_is_rolled_back(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, identity_store: IdentityStore
) -> None:
    s = slug()
    acts = build_activities(WorkerSettings(), cluster=cluster, teams=IdentityTeamStore(store=identity_store))
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            with pytest.raises(WorkflowFailed) as err:
                await start_provision_team(temporal_env.client, s, "Ghosts", str(uuid.uuid4()), task_queue=task_queue)
    assert "failed at team record" in str(err.value) and "is not a user" in str(err.value)
    assert not any(objects_in(cluster, f"mcp-team-{s}").values())
    assert await identity_store.get_team(s) is None


@pytest.mark.parametrize("bad", ["Upper", "-lead", "a_b", "x" * 43, ""])
async def test_invalid_slug_is_rejected_before_starting(temporal_env: WorkflowEnvironment, bad: str) -> None:
    with pytest.raises(ValueError, match="invalid team slug"):
        await start_provision_team(temporal_env.client, bad, "Name", "someone", task_queue="never-used")


async def test_api_provisioner_provisions_and_deprovisions_an_existing_team_row(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, identity_store: IdentityStore
) -> None:
    # The API writes the team row (with its owner) first, then hands the team to the provisioner.
    owner = await identity_store.create_user(f"{uuid.uuid4().hex[:6]}@example.com", "user", None)
    team = await identity_store.create_team(slug(), "Research", owner.id)
    provisioner = TemporalTeamProvisioner(temporal_env.client, task_queue=task_queue)
    acts = build_activities(WorkerSettings(), cluster=cluster, teams=IdentityTeamStore(store=identity_store))
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, acts, ex):
            await provisioner.provision(team)
            assert all(objects_in(cluster, team.namespace).values())
            binding = cluster.get(Ref("rbac.authorization.k8s.io/v1", "RoleBinding", team.namespace, "team-owners"))
            assert binding is not None
            assert [s["kind"] for s in binding["subjects"]] == ["Group"]
            await provisioner.deprovision(team)
            await provisioner.deprovision(team)  # idempotent
    assert not any(objects_in(cluster, team.namespace).values())
    assert await identity_store.get_team(team.slug) == team  # the row is the API's to delete


async def test_api_provisioner_failure_leaves_the_row_to_the_api(
    temporal_env: WorkflowEnvironment, task_queue: str, cluster: KubeCluster, identity_store: IdentityStore
) -> None:
    team = await identity_store.create_team(slug(), "Fragile", None)
    teams = IdentityTeamStore(store=identity_store)
    failing = FailingAt(teams, cluster)
    acts = [a for a in build_activities(WorkerSettings(), cluster=cluster, teams=teams) if a.__name__ != "apply_object"]
    provisioner = TemporalTeamProvisioner(temporal_env.client, task_queue=task_queue)
    with ThreadPoolExecutor(16) as ex:
        async with new_worker(temporal_env.client, task_queue, [*acts, failing.apply_object], ex):
            with pytest.raises(WorkflowFailed, match="failed at RoleBinding"):
                await provisioner.provision(team)
    assert not any(objects_in(cluster, team.namespace).values())
    assert await identity_store.get_team(team.slug) == team
