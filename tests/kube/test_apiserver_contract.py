"""Contract tests: the local API server answers as the Kubernetes API documents, via the official client."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import dynamic, watch

from tests.fixtures.kube import LocalKube
from tests.helpers.kube import cm, raw

GROUP, VERSION = "mcpruntime.org", "v1alpha1"


def server_body(name: str, image: str = "img:1") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MCPServer",
        "metadata": {"name": name},
        "spec": {"image": image, "tools": [{"name": "echo", "sideEffect": "read"}]},
    }


@pytest.fixture
def core(kube_cluster: LocalKube) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube_cluster.api)


@pytest.fixture
def co(kube_cluster: LocalKube) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(kube_cluster.api)


def status_of(exc: k8s.ApiException) -> dict[str, Any]:
    import json

    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return dict(body)


def test_create_answers_201_with_uid_resource_version_and_creation_timestamp(kube_cluster, kube_namespace) -> None:
    status, body = raw(kube_cluster, "POST", f"/api/v1/namespaces/{kube_namespace}/configmaps", cm("a"))
    assert status == 201
    meta = body["metadata"]
    assert meta["uid"] and meta["resourceVersion"].isdigit() and meta["creationTimestamp"].endswith("Z")
    assert body["kind"] == "ConfigMap" and body["apiVersion"] == "v1"


def test_resource_version_is_one_global_increasing_counter(core, kube_namespace) -> None:
    a = core.create_namespaced_config_map(kube_namespace, cm("a"))
    b = core.create_namespaced_config_map(kube_namespace, cm("b"))
    a2 = core.patch_namespaced_config_map("a", kube_namespace, {"data": {"k": "v2"}})
    rvs = [int(x.metadata.resource_version) for x in (a, b, a2)]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3
    listed = core.list_namespaced_config_map(kube_namespace)
    assert int(listed.metadata.resource_version) >= rvs[-1]


def test_duplicate_create_is_409_already_exists(core, kube_namespace) -> None:
    core.create_namespaced_config_map(kube_namespace, cm("dup"))
    with pytest.raises(k8s.ApiException) as info:
        core.create_namespaced_config_map(kube_namespace, cm("dup"))
    body = status_of(info.value)
    assert (body["reason"], body["code"]) == ("AlreadyExists", 409)
    assert body["details"] == {"name": "dup", "kind": "configmaps"}
    assert body["message"] == 'configmaps "dup" already exists'


def test_get_missing_is_404_not_found_with_details(co, kube_namespace) -> None:
    with pytest.raises(k8s.ApiException) as info:
        co.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", "nope")
    body = status_of(info.value)
    assert body["reason"] == "NotFound"
    assert body["details"] == {"name": "nope", "group": GROUP, "kind": "mcpservers"}
    assert body["message"] == 'mcpservers.mcpruntime.org "nope" not found'


def test_unknown_resource_path_is_404(kube_cluster) -> None:
    status, body = raw(kube_cluster, "GET", "/apis/nothing.example/v1/widgets")
    assert status == 404 and body["reason"] == "NotFound"


def test_create_in_missing_namespace_is_404_for_the_namespace(core) -> None:
    with pytest.raises(k8s.ApiException) as info:
        core.create_namespaced_config_map("no-such-ns", cm("x"))
    body = status_of(info.value)
    assert body["reason"] == "NotFound" and body["details"]["kind"] == "namespaces"


def test_put_with_stale_resource_version_is_409_conflict(core, kube_namespace) -> None:
    first = core.create_namespaced_config_map(kube_namespace, cm("c"))
    core.patch_namespaced_config_map("c", kube_namespace, {"data": {"k": "new"}})
    stale = cm("c", data={"k": "stale"})
    stale["metadata"]["resourceVersion"] = first.metadata.resource_version
    with pytest.raises(k8s.ApiException) as info:
        core.replace_namespaced_config_map("c", kube_namespace, stale)
    body = status_of(info.value)
    assert body["reason"] == "Conflict" and "the object has been modified" in body["message"]
    assert core.read_namespaced_config_map("c", kube_namespace).data == {"k": "new"}


def test_merge_patch_carrying_stale_resource_version_is_409(co, kube_namespace) -> None:
    made = co.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", server_body("s"))
    co.patch_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", "s", {"spec": {"image": "b"}})
    patch = {"metadata": {"resourceVersion": made["metadata"]["resourceVersion"]}, "spec": {"image": "c"}}
    with pytest.raises(k8s.ApiException) as info:
        co.patch_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", "s", patch)
    assert status_of(info.value)["reason"] == "Conflict"


def test_custom_resource_put_requires_resource_version(co, kube_namespace) -> None:
    co.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", server_body("s"))
    with pytest.raises(k8s.ApiException) as info:
        co.replace_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", "s", server_body("s"))
    body = status_of(info.value)
    assert body["reason"] == "Invalid" and body["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_generation_bumps_on_spec_change_only(co, kube_namespace) -> None:
    args = (GROUP, VERSION, kube_namespace, "mcpservers", "g")
    made = co.create_namespaced_custom_object(*args[:4], server_body("g"))
    assert made["metadata"]["generation"] == 1
    labelled = co.patch_namespaced_custom_object(*args, {"metadata": {"labels": {"x": "y"}}})
    assert labelled["metadata"]["generation"] == 1
    status = co.patch_namespaced_custom_object_status(*args, {"status": {"phase": "Ready"}})
    assert status["metadata"]["generation"] == 1
    changed = co.patch_namespaced_custom_object(*args, {"spec": {"image": "img:2"}})
    assert changed["metadata"]["generation"] == 2


def test_noop_write_keeps_the_resource_version(co, kube_namespace) -> None:
    args = (GROUP, VERSION, kube_namespace, "mcpservers", "n")
    made = co.create_namespaced_custom_object(*args[:4], server_body("n"))
    same = co.patch_namespaced_custom_object(*args, {"spec": {"image": "img:1"}})
    assert same["metadata"]["resourceVersion"] == made["metadata"]["resourceVersion"]


def test_status_subresource_separates_spec_and_status(co, kube_namespace) -> None:
    args = (GROUP, VERSION, kube_namespace, "mcpservers", "st")
    body = server_body("st")
    body["status"] = {"phase": "Injected"}
    made = co.create_namespaced_custom_object(*args[:4], body)
    assert "status" not in made  # status is ignored on create
    main = co.patch_namespaced_custom_object(*args, {"status": {"phase": "Main"}})
    assert "status" not in main  # ... and through the main resource
    via_status = co.patch_namespaced_custom_object_status(*args, {"spec": {"image": "x"}, "status": {"phase": "Ok"}})
    assert via_status["status"] == {"phase": "Ok"}
    assert via_status["spec"]["image"] == "img:1"  # spec changes through /status are ignored


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", {"web1", "web2"}),
        ("tier==web", {"web1", "web2"}),
        ("tier!=web", {"db", "bare"}),
        ("tier in (web,db)", {"web1", "web2", "db"}),
        ("tier notin (web)", {"db", "bare"}),
        ("tier", {"web1", "web2", "db"}),
        ("!tier", {"bare"}),
        ("tier=web,zone=a", {"web1"}),
        ("tier in (web),!zone", {"web2"}),
    ],
)
def test_label_selector_semantics(core, kube_namespace, selector: str, expected: set[str]) -> None:
    for name, labels in {
        "web1": {"tier": "web", "zone": "a"},
        "web2": {"tier": "web"},
        "db": {"tier": "db", "zone": "a"},
        "bare": {},
    }.items():
        core.create_namespaced_config_map(kube_namespace, cm(name, labels))
    got = core.list_namespaced_config_map(kube_namespace, label_selector=selector)
    assert {i.metadata.name for i in got.items} == expected


def test_malformed_label_selector_is_400(core, kube_namespace) -> None:
    with pytest.raises(k8s.ApiException) as info:
        core.list_namespaced_config_map(kube_namespace, label_selector="tier in web")
    assert status_of(info.value)["reason"] == "BadRequest"


def test_field_selectors_on_name_and_namespace(core, kube_namespace) -> None:
    for name in ("one", "two"):
        core.create_namespaced_config_map(kube_namespace, cm(name))
    names = {
        i.metadata.name
        for i in core.list_namespaced_config_map(kube_namespace, field_selector="metadata.name=one").items
    }
    assert names == {"one"}
    others = core.list_namespaced_config_map(kube_namespace, field_selector="metadata.name!=one").items
    assert {i.metadata.name for i in others} == {"two"}
    everywhere = core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={kube_namespace}").items
    assert {i.metadata.name for i in everywhere} == {"one", "two"}
    with pytest.raises(k8s.ApiException) as info:
        core.list_namespaced_config_map(kube_namespace, field_selector="spec.color=red")
    assert status_of(info.value)["reason"] == "BadRequest"


def test_patch_flavours(core, kube_namespace, kube_cluster) -> None:
    core.create_namespaced_config_map(kube_namespace, cm("p", data={"a": "1", "b": "2"}))
    merged = core.patch_namespaced_config_map("p", kube_namespace, {"data": {"a": None, "c": "3"}})
    assert merged.data == {"b": "2", "c": "3"}
    patched = core.patch_namespaced_config_map(
        "p", kube_namespace, [{"op": "replace", "path": "/data/b", "value": "9"}]
    )
    assert patched.data == {"b": "9", "c": "3"}
    path = f"/api/v1/namespaces/{kube_namespace}/configmaps/p"
    status, body = raw(
        kube_cluster,
        "PATCH",
        path,
        [{"op": "test", "path": "/data/b", "value": "0"}],
        content_type="application/json-patch+json",
    )
    assert status == 422 and body["reason"] == "Invalid"
    status, body = raw(kube_cluster, "PATCH", path, {"data": {"x": "1"}}, content_type="application/apply-patch+yaml")
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    assert core.read_namespaced_config_map("p", kube_namespace).data == {"b": "9", "c": "3"}


def test_generate_name_appends_a_random_suffix(core, kube_namespace) -> None:
    made = core.create_namespaced_config_map(kube_namespace, {"metadata": {"generateName": "gen-"}, "data": {}})
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == len("gen-") + 5


def test_invalid_object_name_is_422_with_a_cause(core, kube_namespace) -> None:
    with pytest.raises(k8s.ApiException) as info:
        core.create_namespaced_config_map(kube_namespace, cm("Not_Valid"))
    body = status_of(info.value)
    assert body["reason"] == "Invalid" and body["details"]["causes"][0]["field"] == "metadata.name"


def test_delete_answers_success_status_then_404(core, kube_namespace) -> None:
    made = core.create_namespaced_config_map(kube_namespace, cm("d"))
    out = core.delete_namespaced_config_map("d", kube_namespace, propagation_policy="Foreground")
    assert out["status"] == "Success" and out["details"]["uid"] == made.metadata.uid
    with pytest.raises(k8s.ApiException) as info:
        core.read_namespaced_config_map("d", kube_namespace)
    assert info.value.status == 404


def test_finalizers_hold_deletion_until_removed(core, kube_namespace, kube_cluster) -> None:
    body = cm("f")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    core.create_namespaced_config_map(kube_namespace, body)
    status, pending = raw(kube_cluster, "DELETE", f"/api/v1/namespaces/{kube_namespace}/configmaps/f")
    assert status == 202 and pending["metadata"]["deletionTimestamp"]
    assert core.read_namespaced_config_map("f", kube_namespace).metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("f", kube_namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(k8s.ApiException):
        core.read_namespaced_config_map("f", kube_namespace)


def test_namespace_deletion_removes_its_objects(kube_cluster, core) -> None:
    kube_cluster.kube.ensure_namespace("doomed")
    core.create_namespaced_config_map("doomed", cm("inside"))
    core.create_namespaced_secret("doomed", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    core.delete_namespace("doomed")
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []
    assert core.list_secret_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []
    with pytest.raises(k8s.ApiException):
        core.read_namespace("doomed")


def test_secret_string_data_is_stored_base64(core, kube_namespace) -> None:
    made = core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "s"}, "stringData": {"k": "hello"}})
    assert made.data == {"k": "aGVsbG8="} and made.type == "Opaque"


def test_deployment_rollout_readiness_is_controllable(kube_cluster, kube_namespace) -> None:
    apps = k8s.AppsV1Api(kube_cluster.api)
    dep = {
        "metadata": {"name": "d", "annotations": {"kube.mcp-sentinel.dev/rollout": "hold"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
    }
    held = apps.create_namespaced_deployment(kube_namespace, dep)
    assert not held.status.ready_replicas and held.status.unavailable_replicas == 2
    released = apps.patch_namespaced_deployment(
        "d", kube_namespace, {"metadata": {"annotations": {"kube.mcp-sentinel.dev/rollout": None}}}
    )
    assert released.status.ready_replicas == 2 and released.status.observed_generation == released.metadata.generation
    restarted = apps.patch_namespaced_deployment(
        "d", kube_namespace, {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}
    )
    assert restarted.metadata.generation == 2 and restarted.status.observed_generation == 2
    forced = apps.patch_namespaced_deployment_status("d", kube_namespace, {"status": {"readyReplicas": 1}})
    assert forced.status.ready_replicas == 1


def test_owner_deletion_collects_deployments_services_and_ingresses(kube_cluster, kube_namespace, co) -> None:
    """What the server lifecycle relies on: every rendered object follows its MCPServer (background GC)."""
    owner = co.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", server_body("own"))
    ref = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "MCPServer", "name": "own",
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    meta = {"name": "own", "ownerReferences": ref}
    apps, core, net = (k8s.AppsV1Api(kube_cluster.api), k8s.CoreV1Api(kube_cluster.api),
                       k8s.NetworkingV1Api(kube_cluster.api))
    apps.create_namespaced_deployment(kube_namespace, {"metadata": meta, "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    core.create_namespaced_service(kube_namespace, {"metadata": meta, "spec": {"ports": [{"port": 80}]}})
    net.create_namespaced_ingress(kube_namespace, {"metadata": meta, "spec": {"rules": [{"http": {"paths": [
        {"path": "/own", "pathType": "Prefix",
         "backend": {"service": {"name": "own", "port": {"number": 80}}}}]}}]}})
    stored = net.read_namespaced_ingress("own", kube_namespace)
    assert stored.metadata.owner_references[0].uid == owner["metadata"]["uid"]
    co.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", "own")
    for read in (apps.read_namespaced_deployment, core.read_namespaced_service, net.read_namespaced_ingress):
        with pytest.raises(k8s.ApiException) as info:
            read("own", kube_namespace)
        assert info.value.status == 404


def test_discovery_serves_core_groups_and_registered_crds(kube_cluster) -> None:
    assert k8s.VersionApi(kube_cluster.api).get_code().major == "1"
    status, groups = raw(kube_cluster, "GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {"apps", "rbac.authorization.k8s.io", "networking.k8s.io", GROUP} <= names
    status, resources = raw(kube_cluster, "GET", f"/apis/{GROUP}/{VERSION}")
    served = {r["name"] for r in resources["resources"]}
    assert {"mcpservers", "mcpservers/status", "mcpaccessgrants", "mcpagentsessions"} <= served
    client = dynamic.DynamicClient(kube_cluster.api)
    servers = client.resources.get(api_version=f"{GROUP}/{VERSION}", kind="MCPServer")
    names = {i.metadata.name for i in servers.get(namespace="mcp-servers").items}
    assert names == {"server-a", "server-b"}


def test_requests_without_the_token_are_401(kube_cluster) -> None:
    status, body = raw(kube_cluster, "GET", "/api/v1/namespaces", auth=False)
    assert status == 401 and body["reason"] == "Unauthorized"


def test_bad_json_body_is_400(kube_cluster, kube_namespace) -> None:
    import httpx

    from tests.helpers.kube import token

    resp = httpx.post(
        f"{kube_cluster.url}/api/v1/namespaces/{kube_namespace}/configmaps",
        content="{not json",
        headers={"Authorization": f"Bearer {token(kube_cluster)}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest"


# ----- watch ----------------------------------------------------------------------------


def test_watch_streams_added_modified_deleted(core, kube_namespace) -> None:
    core.create_namespaced_config_map(kube_namespace, cm("existing"))
    events: list[tuple[str, str]] = []
    w = watch.Watch()

    def writer() -> None:
        core.create_namespaced_config_map(kube_namespace, cm("w"))
        core.patch_namespaced_config_map("w", kube_namespace, {"data": {"k": "2"}})
        core.delete_namespaced_config_map("w", kube_namespace)

    started = False
    for ev in w.stream(core.list_namespaced_config_map, kube_namespace, timeout_seconds=10):
        events.append((ev["type"], ev["object"].metadata.name))
        if not started:
            started = True
            threading.Thread(target=writer).start()
        if ev["type"] == "DELETED":
            w.stop()
    assert events == [("ADDED", "existing"), ("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_from_a_resource_version_replays_later_events_only(core, kube_namespace) -> None:
    core.create_namespaced_config_map(kube_namespace, cm("before"))
    rv = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    core.create_namespaced_config_map(kube_namespace, cm("after"))
    core.delete_namespaced_config_map("before", kube_namespace)
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map, kube_namespace, resource_version=rv, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "after"), ("DELETED", "before")]


def test_watch_with_selector_reports_objects_leaving_and_entering_it(core, kube_namespace) -> None:
    core.create_namespaced_config_map(kube_namespace, cm("x", {"team": "a"}))
    rv = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    core.patch_namespaced_config_map("x", kube_namespace, {"metadata": {"labels": {"team": "b"}}})
    core.patch_namespaced_config_map("x", kube_namespace, {"metadata": {"labels": {"team": "a"}}})
    seen = [
        e["type"]
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            kube_namespace,
            label_selector="team=a",
            resource_version=rv,
            timeout_seconds=1,
        )
    ]
    assert seen == ["DELETED", "ADDED"]


def test_watch_of_custom_objects_carries_dicts_with_resource_versions(co, kube_namespace) -> None:
    co.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, "mcpservers", server_body("ws"))
    events = list(
        watch.Watch().stream(
            co.list_namespaced_custom_object, GROUP, VERSION, kube_namespace, "mcpservers", timeout_seconds=1
        )
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "ws")]
    assert events[0]["object"]["kind"] == "MCPServer"
