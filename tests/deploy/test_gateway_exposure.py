"""Who can reach an MCP server's gateway, over the rendered manifests (knative/, `kustomize build`).

A header-mode gateway trusts `X-MCP-Human-ID` as the adapter's statement, so the public ingress must
never route to it and a NetworkPolicy must admit only the adapter; the sidecar's inventory port is
for the API alone and never routed. NetworkPolicies are evaluated here as Kubernetes does (policies
selecting a pod add up; a pod no policy selects is open), for a set of realistic traffic sources.
Each rule is also shown to catch the mistake it exists for (mutated manifests).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers.manifests import documents

DOCS = [doc for _, doc in documents()]
PLATFORM_NS = "mcp-sentinel"


@dataclass(frozen=True)
class Source:
    """A pod that may open a connection: its namespace (and that namespace's labels) and its labels."""

    name: str
    namespace: str
    pod_labels: dict[str, str]
    ns_labels: dict[str, str] | None = None

    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **(self.ns_labels or {})}


INTERNET = Source("ingress controller (the internet)", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
ADAPTER = Source("adapter", PLATFORM_NS, {"mcp-sentinel.io/adapter": "true"})
API = Source("api", PLATFORM_NS, {"serving.knative.dev/service": "mcp-sentinel-api"})
UI = Source("ui", PLATFORM_NS, {"serving.knative.dev/service": "mcp-sentinel-ui"})
TENANT = Source("a tenant's own gateway pod", "team-x", {"mcp-sentinel.io/gateway-injected": "true",
                                                           "mcp-sentinel.io/adapter": "true"},
                {"mcp-sentinel.io/mcp-servers": "true"})
NEIGHBOUR = Source("another MCP server", "mcp-servers", {"mcp-sentinel.io/gateway-injected": "true",
                                                          "mcp-sentinel.io/adapter": "true"})
KNATIVE = Source("knative activator", "knative-serving", {"app": "activator"})
PROMETHEUS = Source("prometheus", "mcp-sentinel-observability", {"app.kubernetes.io/name": "prometheus"})
SOURCES = (INTERNET, ADAPTER, API, UI, TENANT, NEIGHBOUR, KNATIVE, PROMETHEUS)


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Label-selector semantics (an empty selector selects everything)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_ns: str, src: Source) -> bool:
    if "ipBlock" in peer:
        return src.namespace == INTERNET.namespace  # an ipBlock is how outside traffic would get in
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    if ns_sel is None and src.namespace != policy_ns:
        return False  # a bare podSelector means pods of the policy's own namespace
    if ns_sel is not None and not _selects(ns_sel, src.namespace_labels()):
        return False
    return pod_sel is None or _selects(pod_sel, src.pod_labels)


def admitted(docs: list[dict[str, Any]], namespace: str, labels: dict[str, str], port: int, src: Source) -> bool:
    """Whether `src` may connect to `port` of a pod (`namespace`, `labels`) under the NetworkPolicies."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"].get("namespace") == namespace
                and "Ingress" in (d["spec"].get("policyTypes") or ["Ingress"])
                and _selects(d["spec"].get("podSelector"), labels)]
    if not policies:
        return True  # not isolated
    for pol in policies:
        for rule in pol["spec"].get("ingress") or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get("from")
            if not peers or any(_peer_matches(peer, namespace, src) for peer in peers):
                return True
    return False


@dataclass
class Gateway:
    """One MCP server pod template with its governance sidecar, as the manifests render it."""

    name: str
    namespace: str
    labels: dict[str, str]
    mode: str
    gateway_port: int
    inventory_port: int
    server_port: int
    container_ports: dict[str, int]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or []}


def gateways(docs: list[dict[str, Any]]) -> list[Gateway]:
    config_maps = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs if d["kind"] == "ConfigMap"}
    out = []
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        tpl = d["spec"]["template"]
        labels = tpl["metadata"].get("labels") or {}
        if labels.get("mcp-sentinel.io/gateway-injected") != "true":
            continue
        ns = d["metadata"]["namespace"]
        containers = {c["name"]: c for c in tpl["spec"]["containers"]}
        gw = containers["mcp-gateway"]
        env = _env(gw)
        mount = next(m for m in gw["volumeMounts"] if env["POLICY_FILE"].startswith(m["mountPath"] + "/"))
        volume = next(v for v in tpl["spec"]["volumes"] if v["name"] == mount["name"])
        policy = json.loads(config_maps[(ns, volume["configMap"]["name"])]["data"]["policy.json"])
        mode = ((policy.get("auth") or {}).get("mode") or "header").strip().lower()
        ports = {p["name"]: p["containerPort"] for c in containers.values() for p in c.get("ports") or []}
        out.append(Gateway(d["metadata"]["name"], ns, labels, mode, int(env["PORT"]),
                           int(env.get("INVENTORY_PORT") or 0), int(_env(containers["mcp-server"])["PORT"]), ports))
    return out


def _routes(docs: list[dict[str, Any]]) -> list[tuple[str, str, int | str]]:
    """(namespace, service, service port) of every Ingress backend."""
    return [
        (d["metadata"].get("namespace", ""), path["backend"]["service"]["name"],
         path["backend"]["service"]["port"].get("number") or path["backend"]["service"]["port"].get("name"))
        for d in docs if d["kind"] == "Ingress"
        for rule in d["spec"].get("rules") or [] for path in (rule.get("http") or {}).get("paths") or []
    ]


def _target(docs: list[dict[str, Any]], ns: str, service: str, port: int | str, gw: Gateway) -> int | None:
    """The container port an Ingress backend reaches on `gw`'s pods, or None when it does not select them."""
    svc = next((d for d in docs if d["kind"] == "Service" and d["apiVersion"] == "v1"
                and d["metadata"]["name"] == service and d["metadata"].get("namespace") == ns), None)
    if svc is None or ns != gw.namespace or not _selects({"matchLabels": svc["spec"].get("selector") or {}},
                                                          gw.labels):
        return None
    sp = next(p for p in svc["spec"]["ports"] if p["port"] == port or p.get("name") == port)
    target = sp.get("targetPort", sp["port"])
    return gw.container_ports[target] if isinstance(target, str) else int(target)


def problems(docs: list[dict[str, Any]]) -> list[str]:
    """Every way the manifests expose a gateway more than its identity mode allows."""
    out: list[str] = []
    found = gateways(docs)
    if not found:
        return ["no MCP server with a gateway in the manifests"]
    for gw in found:
        where = f"{gw.namespace}/{gw.name} ({gw.mode} mode)"
        public = gw.labels.get("mcp-sentinel.io/public-gateway") == "true"
        if gw.mode == "header" and public:
            out.append(f"{where} is labelled public-gateway")
        if not gw.inventory_port:
            out.append(f"{where} has no INVENTORY_PORT")
        for src in SOURCES:
            reach = admitted(docs, gw.namespace, gw.labels, gw.gateway_port, src)
            if gw.mode == "header" and reach != (src is ADAPTER):
                out.append(f"{where}: gateway port {gw.gateway_port} "
                           f"{'open to' if src is not ADAPTER else 'closed for'} {src.name}")
            if gw.inventory_port and admitted(docs, gw.namespace, gw.labels, gw.inventory_port, src) != (src is API):
                out.append(f"{where}: inventory port {gw.inventory_port} "
                           f"{'open to' if src is not API else 'closed for'} {src.name}")
            if admitted(docs, gw.namespace, gw.labels, gw.server_port, src):
                out.append(f"{where}: MCP server port {gw.server_port} open to {src.name}")
        for ns, service, port in _routes(docs):
            target = _target(docs, ns, service, port, gw)
            if target is None:
                continue
            if gw.mode == "header":
                out.append(f"{where} is routed through the public ingress ({service}:{port})")
            if not public:
                out.append(f"{where} is routed publicly without the public-gateway label")
            if target != gw.gateway_port:
                out.append(f"{where}: the public ingress reaches port {target}")
    return out


def test_header_mode_gateways_are_reachable_only_by_the_adapter_and_inventory_only_by_the_api() -> None:
    assert [gw.mode for gw in gateways(DOCS)], "the example server must be in the manifests"
    assert problems(DOCS) == []


def _doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def _old_public_route(docs: list[dict[str, Any]]) -> None:
    """The route upstream (and we, before) shipped: /server-a straight to a header-mode gateway."""
    docs.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                 "metadata": {"name": "mcp-servers", "namespace": "mcp-servers"},
                 "spec": {"rules": [{"host": "sentinel.example.com", "http": {"paths": [
                     {"path": "/server-a(/|$)(.*)", "pathType": "ImplementationSpecific",
                      "backend": {"service": {"name": "server-a", "port": {"number": 8091}}}}]}}]}})


def _label_public(docs: list[dict[str, Any]]) -> None:
    _doc(docs, "Deployment", "server-a")["spec"]["template"]["metadata"]["labels"]["mcp-sentinel.io/public-gateway"] = (
        "true")


def _old_policy(docs: list[dict[str, Any]]) -> None:
    """The old rule: the ingress controller and the whole platform namespace on the gateway port."""
    pol = _doc(docs, "NetworkPolicy", "mcp-servers-gateway-from-adapter")
    pol["spec"]["ingress"].append({"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mcp-sentinel"}}}],
        "ports": [{"protocol": "TCP", "port": 8091}]})


def _inventory_for_the_namespace(docs: list[dict[str, Any]]) -> None:
    pol = _doc(docs, "NetworkPolicy", "mcp-servers-gateway-from-adapter")
    pol["spec"]["ingress"].append({"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 8099}]})


def _route_the_inventory_port(docs: list[dict[str, Any]]) -> None:
    _label_public(docs)
    _doc(docs, "ConfigMap", "server-a-gateway-policy")["data"]["policy.json"] = json.dumps(
        {"auth": {"mode": "platform"}})
    _old_public_route(docs)
    docs[-1]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {"name": "inventory"}


def _no_isolation(docs: list[dict[str, Any]]) -> None:
    docs[:] = [d for d in docs if not (d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == "mcp-servers")]


@pytest.mark.parametrize("mutate", [_old_public_route, _label_public, _old_policy, _inventory_for_the_namespace,
                                    _route_the_inventory_port, _no_isolation])
def test_each_exposure_mistake_is_caught(mutate: Any) -> None:
    docs = copy.deepcopy(DOCS)
    mutate(docs)
    assert problems(docs), mutate.__name__


def test_a_public_gateway_in_a_token_mode_may_be_routed() -> None:
    # What the platform-token default will look like: opt-in label, non-header policy, a route to the gateway port.
    docs = copy.deepcopy(DOCS)
    _doc(docs, "ConfigMap", "server-a-gateway-policy")["data"]["policy.json"] = json.dumps(
        {"auth": {"mode": "platform"}})
    _label_public(docs)
    _old_public_route(docs)
    assert problems(docs) == []
    assert admitted(docs, "mcp-servers", gateways(docs)[0].labels, 8091, INTERNET)
