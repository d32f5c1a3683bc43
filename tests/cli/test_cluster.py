"""`sentinel status|logs|events --kube` against the local Kubernetes API server (pods, events, pod logs).

The server is the real `kube` stack part with a pod-log folder (what the kubelet would serve);
pods, their status and events are written through the official client, as a cluster would hold them.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from localstack.config import Ports, StackConfig
from localstack.parts import kube as kube_part
from localstack.supervisor import Supervisor
from mcp_sentinel.cli.main import main
from mcp_sentinel.kube.client import load_kube
from mcp_sentinel.kube.resources import SentinelKube

PLATFORM = "mcp-sentinel"
SERVERS = "mcp-servers"  # the demo seed's MCPServers live here


@dataclasses.dataclass
class Cluster:
    cfg: StackConfig
    api: k8s.ApiClient
    logs: Path

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    def pod(self, ns: str, name: str, labels: dict[str, str], containers: list[str], *, ready: bool = True) -> None:
        body: Any = {"metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"name": c, "image": "example/x:1"} for c in containers]}}  # fmt: skip
        self.core.create_namespaced_pod(ns, body)
        status = {"status": {"phase": "Running" if ready else "Pending", "containerStatuses": [
            {"name": c, "ready": ready, "restartCount": 2 if not ready else 0, "image": "example/x:1",
             "imageID": "", "containerID": ""} for c in containers]}}  # fmt: skip
        self.core.patch_namespaced_pod_status(name, ns, status)

    def write_log(self, ns: str, pod: str, container: str, text: str) -> Path:
        path = self.logs / ns / pod / f"{container}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(text)
        return path

    def event(self, ns: str, name: str, reason: str, obj: str, message: str, age: timedelta,
              kind: str = "Warning") -> None:
        ts = datetime.now(UTC) - age
        event: Any = {
            "metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": obj, "namespace": ns},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": ts.isoformat(), "lastTimestamp": ts.isoformat()}  # fmt: skip
        self.core.create_namespaced_event(ns, event)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("cluster"), ports=Ports.free())
    logs = cfg.data_dir / "pod-logs"
    comps = [dataclasses.replace(c, env={**c.env, "KUBE_APISERVER_POD_LOG_DIR": str(logs)})
             for c in kube_part.components(cfg)]
    with Supervisor(cfg) as sup:
        sup.start_all(comps)
        api = load_kube({"KUBECONFIG": str(cfg.kubeconfig)})
        try:
            SentinelKube(api).ensure_namespace(PLATFORM)
            c = Cluster(cfg, api, logs)
            c.pod(PLATFORM, "api-7d9f-abcde", {"app.kubernetes.io/name": "mcp-sentinel-api",
                                               "app.kubernetes.io/part-of": "mcp-sentinel"}, ["api"])
            c.pod(PLATFORM, "stray-debug", {"run": "debug"}, ["sh"])  # not part of the platform: not listed
            c.pod(SERVERS, "server-a-5c6b-xyz12", {"app": "server-a"}, ["server", "sidecar"], ready=False)
            c.write_log(PLATFORM, "api-7d9f-abcde", "api", "".join(f"api line {i}\n" for i in range(1, 101)))
            c.write_log(SERVERS, "server-a-5c6b-xyz12", "sidecar", "sidecar started\npolicy loaded\n")
            c.event(PLATFORM, "api.1", "Started", "api-7d9f-abcde", "Started container api", timedelta(minutes=5),
                    kind="Normal")
            c.event(SERVERS, "server-a.1", "BackOff", "server-a-5c6b-xyz12", "Back-off restarting failed container",
                    timedelta(minutes=1))
            yield c
        finally:
            api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def run(cluster: Cluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setenv("KUBECONFIG", str(cluster.cfg.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    def go(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(list(argv), config=cluster.cfg)
        out = capsys.readouterr()
        return rc, out.out, out.err

    return go


def test_status_lists_platform_and_mcp_server_pods_and_fails_on_an_unready_one(run: Any, cluster: Cluster) -> None:
    rc, out, err = run("status", "--kube", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rc == 1, err  # server-a's pod is not ready
    assert set(rows) == {"api-7d9f-abcde", "server-a-5c6b-xyz12"}  # the stray pod is not the platform's
    assert rows["api-7d9f-abcde"] | {"age": "-"} == {
        "namespace": PLATFORM, "name": "api-7d9f-abcde", "component": "mcp-sentinel-api", "phase": "Running",
        "ready": "1/1", "restarts": 0, "age": "-", "state": "healthy"}
    assert rows["server-a-5c6b-xyz12"]["ready"] == "0/2" and rows["server-a-5c6b-xyz12"]["restarts"] == 4
    rc, out, _err = run("status", "--kube", "-N", PLATFORM)
    assert rc == 0 and "api-7d9f-abcde" in out and "RESTARTS" in out


def test_logs_by_component_or_pod_name_with_tail(run: Any) -> None:
    rc, out, err = run("logs", "api", "--kube", "-n", "3")
    assert rc == 0, err
    assert out.splitlines() == ["api line 98", "api line 99", "api line 100"]
    rc, out, err = run("logs", "server-a-5c6b-xyz12", "--kube", "-c", "sidecar")
    assert rc == 0 and out == "sidecar started\npolicy loaded\n", err


def test_logs_errors_say_what_the_api_said(run: Any) -> None:
    rc, _out, err = run("logs", "server-a-5c6b-xyz12", "--kube")
    assert rc == 2 and "a container name must be specified" in err and "[server sidecar]" in err, err
    rc, _out, err = run("logs", "server-a-5c6b-xyz12", "--kube", "-c", "server")
    assert rc == 2 and "is waiting to start" in err, err
    rc, _out, err = run("logs", "nothing-like-this", "--kube")
    assert rc == 2 and "no pod named or labelled 'nothing-like-this'" in err, err


def test_logs_follow_streams_new_lines_until_the_pod_is_deleted(run: Any, cluster: Cluster) -> None:
    cluster.pod(PLATFORM, "ingest-1", {"app.kubernetes.io/name": "mcp-sentinel-ingest",
                                       "app.kubernetes.io/part-of": "mcp-sentinel"}, ["ingest"])
    cluster.write_log(PLATFORM, "ingest-1", "ingest", "first\n")
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(rc=run("logs", "ingest", "--kube", "-f")))
    t.start()
    time.sleep(1.0)
    cluster.write_log(PLATFORM, "ingest-1", "ingest", "second\n")
    time.sleep(1.0)
    cluster.core.delete_namespaced_pod("ingest-1", PLATFORM)
    t.join(30)
    assert not t.is_alive(), "follow did not end when the pod was deleted"
    rc, out, err = result["rc"]
    assert rc == 0 and out == "first\nsecond\n", (out, err)


def test_events_newest_first_across_platform_and_server_namespaces(run: Any) -> None:
    rc, out, err = run("events", "--kube", "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert [(r["namespace"], r["reason"], r["object"]) for r in rows] == [
        (SERVERS, "BackOff", "pod/server-a-5c6b-xyz12"), (PLATFORM, "Started", "pod/api-7d9f-abcde")]
    rc, out, _err = run("events", "--kube", "--namespace", PLATFORM, "--limit", "5")
    assert rc == 0 and "Started container api" in out and "BackOff" not in out
    rc, _out, err = run("events", "--kube", "--decision", "deny")
    assert rc == 2 and "--decision filters audit events" in err


def test_without_a_cluster_the_commands_say_so(run: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    for argv in (("status", "--kube"), ("logs", "api", "--kube"), ("events", "--kube")):
        rc, _out, err = run(*argv)
        assert rc == 2 and "cannot reach the cluster" in err, (argv, err)


def test_an_unreachable_api_server_is_one_line_and_exit_2(run: Any, cluster: Cluster,
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.helpers.cli import dead_url

    dead = tmp_path / "kubeconfig"
    dead.write_text(cluster.cfg.kubeconfig.read_text().replace(kube_part.api_server_url(cluster.cfg), dead_url()))
    assert dead.read_text() != cluster.cfg.kubeconfig.read_text()
    monkeypatch.setenv("KUBECONFIG", str(dead))
    for argv in (("status", "--kube"), ("logs", "api", "--kube"), ("events", "--kube")):
        rc, _out, err = run(*argv)
        assert rc == 2 and err.startswith("error: Kubernetes API:") and "Traceback" not in err, (argv, err)


def test_pod_log_endpoint_answers_like_the_real_api(cluster: Cluster) -> None:
    with pytest.raises(k8s.ApiException) as missing:
        cluster.core.read_namespaced_pod_log("no-such-pod", PLATFORM)
    assert missing.value.status == 404
    with pytest.raises(k8s.ApiException) as bad:
        cluster.core.read_namespaced_pod_log("api-7d9f-abcde", PLATFORM, container="nope")
    assert bad.value.status == 400 and "container nope is not valid for pod api-7d9f-abcde" in str(bad.value.body)
    assert cluster.core.read_namespaced_pod_log("api-7d9f-abcde", PLATFORM, tail_lines=1) == "api line 100\n"
