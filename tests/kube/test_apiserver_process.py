"""Behaviour that needs a dedicated API server process: expiry of old resourceVersions, bookmarks, persistence."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import watch

from localstack.config import Ports, StackConfig
from localstack.kube_seed import seed_demo
from localstack.parts import kube as kube_part
from localstack.supervisor import PYTHON, Component, Supervisor, http_ok
from mcp_sentinel.kube.client import install_crds, load_kube
from mcp_sentinel.kube.resources import SentinelKube


@pytest.fixture
def small_server(tmp_path) -> Iterator[tuple[k8s.ApiClient, Supervisor]]:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    url = cfg.url("kube_api")
    comp = Component(
        name="kube-small",
        argv=[
            PYTHON,
            "-m",
            "localstack.kube_apiserver",
            "--port",
            str(cfg.ports.kube_api),
            "--state",
            str(tmp_path / "state.json"),
            "--kubeconfig-out",
            str(cfg.kubeconfig),
            "--history",
            "3",
            "--bookmark-interval",
            "0.3",
        ],
        health_check=lambda: http_ok(url + "/readyz") and cfg.kubeconfig.exists() and url in cfg.kubeconfig.read_text(),
        startup_timeout=60,
    )
    with Supervisor(cfg) as sup:
        sup.start(comp)
        api = load_kube({"KUBECONFIG": str(cfg.kubeconfig)})
        yield api, sup


def test_watch_from_an_expired_resource_version_gets_410_gone(small_server) -> None:
    api, _ = small_server
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "n"}})
    old_rv = core.list_namespace().metadata.resource_version
    for i in range(5):
        core.create_namespaced_config_map("n", {"metadata": {"name": f"c{i}"}})
    with pytest.raises(k8s.ApiException) as info:
        list(watch.Watch().stream(core.list_namespaced_config_map, "n", resource_version=old_rv, timeout_seconds=2))
    assert info.value.status == 410 and "Expired" in str(info.value.reason)
    # A recent resourceVersion still resumes.
    rv = core.list_namespaced_config_map("n").metadata.resource_version
    core.create_namespaced_config_map("n", {"metadata": {"name": "late"}})
    names = [
        e["object"].metadata.name
        for e in watch.Watch().stream(core.list_namespaced_config_map, "n", resource_version=rv, timeout_seconds=1)
    ]
    assert names == ["late"]


def test_watch_bookmarks_carry_the_current_resource_version(small_server) -> None:
    api, _ = small_server
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "b"}})
    resp = core.list_namespaced_config_map(
        "b", watch=True, allow_watch_bookmarks=True, timeout_seconds=1, _preload_content=False
    )
    events = [json.loads(line) for line in resp.data.decode().splitlines() if line]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[0]["object"]["kind"] == "ConfigMap"
    assert (
        bookmarks[-1]["object"]["metadata"]["resourceVersion"]
        == core.list_namespaced_config_map("b").metadata.resource_version
    )
    plain = core.list_namespaced_config_map("b", watch=True, timeout_seconds=1, _preload_content=False)
    assert not [line for line in plain.data.decode().splitlines() if line]


def test_state_survives_a_restart(small_server) -> None:
    api, sup = small_server
    install_crds(api)
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "keep"}})
    made = core.create_namespaced_config_map("keep", {"metadata": {"name": "c"}, "data": {"k": "v"}})
    sup.restart("kube-small")
    after = load_kube({"KUBECONFIG": str(sup.config.kubeconfig)})  # same token, still valid
    kept = k8s.CoreV1Api(after).read_namespaced_config_map("c", "keep")
    assert kept.metadata.uid == made.metadata.uid and kept.data == {"k": "v"}
    newer = k8s.CoreV1Api(after).patch_namespaced_config_map("c", "keep", {"data": {"k": "w"}})
    assert int(newer.metadata.resource_version) > int(made.metadata.resource_version)
    # CRDs stay registered and keep validating after a restart.
    with pytest.raises(k8s.ApiException) as info:
        k8s.CustomObjectsApi(after).create_namespaced_custom_object(
            "mcpruntime.org", "v1alpha1", "keep", "mcpservers", {"metadata": {"name": "x"}, "spec": {"port": "eighty"}}
        )
    assert info.value.status == 422


def test_kube_stack_part_seeds_the_demo_idempotently_and_keeps_it_across_restarts(tmp_path) -> None:
    cfg = StackConfig(data_dir=tmp_path, ports=Ports.free())
    with Supervisor(cfg) as sup:
        sup.start_all(kube_part.components(cfg))
        assert (tmp_path / "kube" / "state.json").exists()
        api = load_kube({"KUBECONFIG": str(cfg.kubeconfig)})
        kube = SentinelKube(api)
        assert {s["metadata"]["name"] for s in kube.servers.list("mcp-servers")} == {"server-a", "server-b"}
        grants = {g["metadata"]["name"]: g["spec"] for g in kube.grants.list("mcp-servers")}
        assert grants["alice-server-a"]["serverRef"] == {"name": "server-a"}
        assert grants["bob-server-b"]["subject"] == {"humanID": "bob", "agentID": "workspace-agent"}
        sessions = {s["metadata"]["name"]: s["spec"] for s in kube.sessions.list("mcp-servers")}
        assert sessions["sess-alice-a"]["serverRef"] == {"name": "server-a"}
        assert sessions["sess-bob-b"]["subject"]["humanID"] == "bob"
        # A user's change survives both a re-seed and a restart of the component.
        kube.grants.patch("mcp-servers", "alice-server-a", {"spec": {"disabled": True}})
        assert seed_demo(kube, cfg) == []
        sup.restart("kube")
        again = SentinelKube(load_kube({"KUBECONFIG": str(cfg.kubeconfig)}))
        assert again.grants.get("mcp-servers", "alice-server-a")["spec"]["disabled"] is True
