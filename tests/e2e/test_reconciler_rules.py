"""The local reconciler's rules, in-process against the real local Kubernetes API server and real sidecar
processes: what each MCPServer shape gets (plan), the status shape and its transition times, route
conflicts, an invalid policy, a sidecar that never becomes ready, a dead sidecar, and settings.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localstack.config import free_port
from localstack.front_door.routes_file import parse_routes
from localstack.reconciler.conditions import Condition, build_status, same_status
from localstack.reconciler.loop import Reconciler, api_policy_delivery
from localstack.reconciler.plan import NO_CONTAINER_RUNTIME, plan
from localstack.reconciler.probe import upstream_problem
from localstack.reconciler.processes import SidecarPool
from localstack.reconciler.settings import ReconcilerSettings, SettingsError
from mcp_sentinel.kube.resources import SentinelKube
from mcp_sentinel.policy import PolicyError
from tests.fixtures.kube import LocalKube

UPSTREAM_PORT = free_port()
UPSTREAM = f"http://127.0.0.1:{UPSTREAM_PORT}"  # a listening socket (below): the readiness probe connects


@pytest.fixture(scope="module", autouse=True)
def upstream_listener() -> Iterator[None]:
    """Something accepting TCP connections at UPSTREAM (the kernel's backlog answers; nothing is served)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", UPSTREAM_PORT))
        s.listen(64)
        yield


def _server(name: str, ns: str = "ns", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "generation": 3}, "spec": spec}


def _remote(**gateway: Any) -> dict[str, Any]:
    return {"gateway": {"enabled": True, "upstreamURL": UPSTREAM, **gateway}}


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"image": "x:1", "gateway": {"enabled": True, "upstreamURL": UPSTREAM}}, NO_CONTAINER_RUNTIME),
        ({"image": "x:1"}, NO_CONTAINER_RUNTIME),
        ({}, "NoUpstream"),
        ({"gateway": {"enabled": True, "upstreamURL": "ftp://h"}}, "InvalidUpstreamURL"),
        ({"gateway": {"upstreamURL": UPSTREAM}}, "GatewayDisabled"),
        ({**_remote(), "publicPathPrefix": "api"}, "UnroutablePath"),
        ({**_remote(), "ingressPath": "/elsewhere/path"}, "UnroutablePath"),
        ({**_remote(), "auth": {"mode": "header"}}, "NotRoutable"),
        ({**_remote(), "auth": {"mode": "none"}}, "NotRoutable"),
    ],
)
def test_what_cannot_run_locally_says_why(spec: dict[str, Any], reason: str) -> None:
    p = plan(_server("srv", **spec))
    assert p.problem is not None and p.problem[0] == reason and p.problem[1]


def test_a_remote_server_plans_a_route_and_an_upstream() -> None:
    p = plan(_server("srv", **_remote(upstreamURL="https://mcp.example.com/base/")))
    assert (p.key, p.generation, p.route, p.upstream, p.problem) == (
        "ns/srv", 3, "srv", "https://mcp.example.com/base", None)
    assert plan(_server("srv", publicPathPrefix="/pub/", **_remote())).route == "pub"
    assert plan(_server("srv", ingressPath="/srv/mcp", **_remote())).route == "srv"


def test_conditions_keep_their_transition_time_until_their_status_changes() -> None:
    first = build_status(None, generation=1, url="u", revision="r1", now="2026-01-01T00:00:00Z",
                         conditions=[Condition("Ready", "False", "SidecarNotReady", "m")])  # fmt: skip
    assert first == {"observedGeneration": 1, "url": "u", "policyRevision": "r1", "conditions": [
        {"type": "Ready", "status": "False", "reason": "SidecarNotReady", "message": "m",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}  # fmt: skip
    same = build_status(first, generation=1, url="u", revision="r1", now="2026-01-02T00:00:00Z",
                        conditions=[Condition("Ready", "False", "SidecarNotReady", "m")])  # fmt: skip
    assert same == first and same_status(first, same)
    flipped = build_status(first, generation=2, url="u", revision="r2", now="2026-01-03T00:00:00Z",
                           conditions=[Condition("Ready", "True", "Serving", "m")])  # fmt: skip
    assert flipped["conditions"][0]["lastTransitionTime"] == "2026-01-03T00:00:00Z"
    assert not same_status(first, flipped)


BASE_ENV = {"SENTINEL_DATA_DIR": "/d", "MCP_ROUTES_FILE": "/d/r.json", "POLICY_OUTPUT_DIR": "/d/p",
            "MCP_PUBLIC_BASE_URL": "http://127.0.0.1:18080", "GATEWAY_CREDENTIAL_SECRET": "s" * 40,
            "METRICS_PORT": "9106"}  # fmt: skip


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"GATEWAY_CREDENTIAL_SECRET": ""}, "GATEWAY_CREDENTIAL_SECRET is required"),
        ({"MCP_ROUTES_FILE": ""}, "MCP_ROUTES_FILE is required"),
        ({"MCP_PUBLIC_BASE_URL": "127.0.0.1:18080"}, "MCP_PUBLIC_BASE_URL must be an absolute"),
        ({"METRICS_PORT": "http"}, "METRICS_PORT must be an integer"),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT must be <= 65535"),
        ({"METRICS_PORT": ""}, "METRICS_PORT is required"),
        ({"STATIC_SERVERS": "server-a"}, "STATIC_SERVERS entries must be namespace/name"),
        ({"RESYNC_SECONDS": "0"}, "RESYNC_SECONDS must be >= 0.5"),
        ({"PLATFORM_TOKEN_ISSUER": "http://i/api"}, "PLATFORM_JWKS_URL is required"),
        ({"PLATFORM_TOKEN_ISSUER": "http://i/api", "PLATFORM_JWKS_URL": "i/jwks"}, "PLATFORM_JWKS_URL must be an"),
        ({"MCP_PUBLIC_BASE_URL": ""}, "MCP_PUBLIC_BASE_URL is required"),
    ],
)
def test_bad_settings_are_refused(override: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        ReconcilerSettings.from_env({**BASE_ENV, **override})
    assert ReconcilerSettings.from_env(BASE_ENV).resync_seconds == 5.0


# ----- in-process reconciler against the local API server ------------------------------------------


@pytest.fixture
def make(kube_cluster: LocalKube, tmp_path: Path) -> Iterator[Any]:
    made: list[Reconciler] = []

    def build(deliver: Any = api_policy_delivery, ready_seconds: float = 20.0, static: frozenset[str] = frozenset(),
              ) -> Reconciler:  # fmt: skip
        settings = ReconcilerSettings(
            data_dir=tmp_path, routes_file=tmp_path / "routes.json", policy_dir=tmp_path / "policies",
            public_base_url="http://127.0.0.1:18080", ingest_url="", gateway_secret="s" * 40, platform_issuer="",
            platform_jwks_url="", metrics_port=1, static_servers=static, sidecar_ready_seconds=ready_seconds,
        )  # fmt: skip
        r = Reconciler(settings, SentinelKube(kube_cluster.api), SidecarPool(tmp_path / "logs"), deliver=deliver)
        made.append(r)
        return r

    yield build
    for r in made:
        r.shutdown()


def _create(kube: SentinelKube, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return kube.servers.create(ns, {"metadata": {"name": name}, "spec": spec})


def _ready(kube: SentinelKube, ns: str, name: str) -> dict[str, Any]:
    conds = {c["type"]: c for c in kube.servers.get(ns, name).get("status", {}).get("conditions", [])}
    return conds


def test_two_servers_claiming_one_route_the_first_keeps_it(
    make: Any, kube_cluster: LocalKube, kube_namespace: str
) -> None:
    kube = kube_cluster.kube
    other = f"t-{uuid.uuid4().hex[:10]}"
    kube.ensure_namespace(other)
    name = f"dup-{uuid.uuid4().hex[:6]}"
    r = make()
    first = _create(kube, kube_namespace, name, **_remote())
    second = _create(kube, other, name, **_remote())
    r.reconcile(first)
    r.reconcile(second)
    assert _ready(kube, kube_namespace, name)["Ready"]["reason"] == "Serving"
    lost = _ready(kube, other, name)
    assert lost["Ready"]["reason"] == "RouteConflict" and f"{kube_namespace}/{name}" in lost["Ready"]["message"]
    assert parse_routes(r.s.routes_file.read_text()) == {name: r.pool.running[f"{kube_namespace}/{name}"].url}
    assert f"{other}/{name}" not in r.pool.running
    # A stack server's route is never taken either.
    stack = make(static=frozenset({"mcp-servers/taken"}))
    clash = _create(kube, kube_namespace, "taken", **_remote())
    stack.reconcile(clash)
    assert _ready(kube, kube_namespace, "taken")["Ready"]["reason"] == "RouteConflict"


def test_an_invalid_policy_is_not_ready_and_says_so(make: Any, kube_cluster: LocalKube, kube_namespace: str) -> None:
    def refuse(*_a: Any) -> str:
        raise PolicyError("tool rule names an undeclared tool")

    r = make(deliver=refuse, ready_seconds=1.0)
    obj = _create(kube_cluster.kube, kube_namespace, "badpolicy", **_remote())
    r.reconcile(obj)
    conds = _ready(kube_cluster.kube, kube_namespace, "badpolicy")
    assert conds["PolicyDelivered"]["status"] == "False" and conds["PolicyDelivered"]["reason"] == "PolicyInvalid"
    assert conds["Ready"]["reason"] == "PolicyInvalid" and "undeclared tool" in conds["Ready"]["message"]
    # No policy file was ever written: the sidecar never becomes ready, so it is stopped and not routed.
    assert conds["GatewayReady"]["reason"] == "SidecarNotReady"
    assert r.pool.running == {} and r.routes == {}


def test_an_unexpected_failure_is_reported_and_the_next_server_still_reconciles(
    make: Any, kube_cluster: LocalKube, kube_namespace: str
) -> None:
    def broken(kube: SentinelKube, ns: str, name: str, out: Any) -> str:
        if name == "broken":
            raise RuntimeError("disk full")
        return api_policy_delivery(kube, ns, name, out)

    r = make(deliver=broken)
    for name in ("broken", "fine"):
        r.reconcile(_create(kube_cluster.kube, kube_namespace, name, **_remote()))
    conds = _ready(kube_cluster.kube, kube_namespace, "broken")
    assert conds["Ready"]["reason"] == "ReconcileError" and "disk full" in conds["Ready"]["message"]
    assert _ready(kube_cluster.kube, kube_namespace, "fine")["Ready"]["reason"] == "Serving"
    assert set(r.pool.running) == {f"{kube_namespace}/fine"}


def test_a_dead_sidecar_is_replaced_on_the_next_relist(
    make: Any, kube_cluster: LocalKube, kube_namespace: str
) -> None:
    kube = kube_cluster.kube
    r = make()
    obj = _create(kube, kube_namespace, "crashy", **_remote())
    r.reconcile(obj)
    key = f"{kube_namespace}/crashy"
    before = r.pool.running[key]
    os.kill(before.process.pid, signal.SIGKILL)
    before.process.wait(timeout=10)
    r.reconcile(kube.servers.get(kube_namespace, "crashy"), resync=True)
    after = r.pool.running[key]
    assert after.alive() and after.process.pid != before.process.pid
    assert _ready(kube, kube_namespace, "crashy")["Ready"]["reason"] == "Serving"
    assert parse_routes(r.s.routes_file.read_text()) == {"crashy": after.url}
    # A changed upstream restarts it; removal stops it and drops the route.
    kube.servers.patch(kube_namespace, "crashy", {"spec": {"gateway": {"upstreamURL": "http://127.0.0.1:10"}}})
    r.reconcile(kube.servers.get(kube_namespace, "crashy"))
    moved = r.pool.running[key]
    assert moved.process.pid != after.process.pid and after.process.poll() is not None
    r.remove(key)
    assert moved.process.poll() is not None and parse_routes(r.s.routes_file.read_text()) == {}


def test_a_server_being_deleted_stops_serving_before_it_is_gone(
    make: Any, kube_cluster: LocalKube, kube_namespace: str
) -> None:
    """A finalizer (a cluster controller's cleanup) keeps the object; its route and sidecar go at once."""
    kube = kube_cluster.kube
    r = make()
    obj = kube.servers.create(kube_namespace, {"metadata": {"name": "held", "finalizers": ["example.com/cleanup"]},
                                               "spec": _remote()})  # fmt: skip
    r.reconcile(obj)
    sidecar = r.pool.running[f"{kube_namespace}/held"]
    kube.servers.delete(kube_namespace, "held")
    held = kube.servers.get(kube_namespace, "held")
    assert held["metadata"]["deletionTimestamp"]
    r.reconcile(held)
    assert sidecar.process.poll() is not None and r.pool.running == {} and r.routes == {}
    kube.servers.patch(kube_namespace, "held", {"metadata": {"finalizers": None}})


def test_an_unreachable_upstream_is_routed_but_not_ready_until_it_answers(
    make: Any, kube_cluster: LocalKube, kube_namespace: str
) -> None:
    kube = kube_cluster.kube
    port = free_port()
    r = make()
    r.reconcile(_create(kube, kube_namespace, "later", **_remote(upstreamURL=f"http://127.0.0.1:{port}")))
    ready = _ready(kube, kube_namespace, "later")["Ready"]
    assert ready["reason"] == "UpstreamUnreachable" and f"127.0.0.1:{port}" in ready["message"], ready
    assert _ready(kube, kube_namespace, "later")["GatewayReady"]["status"] == "True"
    assert "later" in parse_routes(r.s.routes_file.read_text())  # routed: callers get the gateway's 502
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(8)
        r.reconcile(kube.servers.get(kube_namespace, "later"), resync=True)
        assert _ready(kube, kube_namespace, "later")["Ready"]["reason"] == "Serving"


def test_the_probe_names_what_failed() -> None:
    assert upstream_problem(UPSTREAM) is None
    assert "connection refused" in (upstream_problem(f"http://127.0.0.1:{free_port()}") or "").lower()
    assert upstream_problem("http://name.invalid:80", timeout=1.0) is not None

