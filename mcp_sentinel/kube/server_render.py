"""What runs an MCPServer in a cluster, as pure functions: MCPServer dict -> Kubernetes objects.

The ServerLifecycle workflow applies these; anything else (the local stack, the API) can reuse
the naming (`public_path`, `public_url`) without a cluster. Shapes follow the hardened example
`knative/sidecar/server-a.yaml`: only gateway ports on the Service, read-only roots, the policy
ConfigMap mounted read-only, a size-capped audit spool. The policy ConfigMap itself is written by
`mcp_sentinel.policy_delivery` (one code path), not here.

Two kinds of server:
* image: `spec.image` runs as container `mcp-server` on loopback, the gateway sidecar in front;
* remote: `spec.gateway.upstreamURL` and no image: a gateway-only Deployment fronting that URL,
  so an MCP server running anywhere gets governance and audit without being moved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mcp_sentinel.kube.resources import MANAGED_BY, owner_reference, policy_configmap_name

Obj = dict[str, Any]

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
PUBLIC_GATEWAY_LABEL = "mcp-sentinel.io/public-gateway"
SPEC_HASH_ANNOTATION = "mcp-sentinel.io/spec-hash"
POLICY_MOUNT = "/var/run/mcp-runtime/policy"
SPOOL_DIR = "/var/spool/mcp-gateway"
# Auth modes whose gateway authenticates callers itself; only these may be reached from outside.
PUBLIC_AUTH_MODES = frozenset({"oauth", "platform"})
RESTRICTED = {
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


class InvalidServer(ValueError):
    """The MCPServer cannot be rendered (nothing to run, or no gateway for a remote server)."""


@dataclass(frozen=True)
class RenderSettings:
    """Cluster-wide inputs of the render (the worker's environment)."""

    gateway_image: str = "ghcr.io/mcp-sentinel/sidecar:0.1.0"
    cluster_name: str = "production"
    ingest_url: str = "http://mcp-sentinel-ingest.mcp-sentinel.svc.cluster.local/events"
    public_base_url: str = ""  # https://host: where servers are public (the API's MCP_PUBLIC_BASE_URL)
    token_issuer: str = ""
    jwks_url: str = "http://mcp-sentinel-api.mcp-sentinel.svc.cluster.local/api/.well-known/jwks.json"
    inventory_keys_configmap: str = "mcp-sentinel-inventory-public-keys"
    progress_deadline_seconds: int = 300


def _spec(server: Mapping[str, Any]) -> Mapping[str, Any]:
    return server.get("spec") or {}


def _meta(server: Mapping[str, Any]) -> tuple[str, str]:
    meta = server.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta["name"])


def public_path(name: str, spec: Mapping[str, Any]) -> str:
    """The server's public MCP path: `spec.ingressPath`, else `/<publicPathPrefix or name>/mcp`."""
    ingress = str(spec.get("ingressPath") or "").strip()
    if ingress.startswith("/"):
        return ingress.rstrip("/") or "/"
    prefix = str(spec.get("publicPathPrefix") or name).strip("/")
    return f"/{prefix}/mcp"


def route_prefix(name: str, spec: Mapping[str, Any]) -> str:
    """The first path segment the public route owns (`<publicPathPrefix or name>`), rewritten away."""
    return str(spec.get("publicPathPrefix") or name).strip("/")


def public_url(public_base_url: str, server: Mapping[str, Any]) -> str:
    """`https://host/<prefix>/mcp` for a routable server; '' when the rendered Ingress does not serve it
    (not routable, no public base, or an `ingressPath` outside `/<publicPathPrefix or name>`)."""
    if not public_base_url or not routable(server):
        return ""
    _, name = _meta(server)
    path = public_path(name, _spec(server))
    prefix = "/" + route_prefix(name, _spec(server))
    if path != prefix and not path.startswith(prefix + "/"):
        return ""
    return public_base_url.rstrip("/") + path


def gateway_on(server: Mapping[str, Any]) -> bool:
    """`spec.gateway.enabled: true` (nothing else turns the sidecar on)."""
    return (_spec(server).get("gateway") or {}).get("enabled") is True


def auth_mode(server: Mapping[str, Any]) -> str:
    """The gateway's auth mode (CRD default `platform`)."""
    return str((_spec(server).get("auth") or {}).get("mode") or "platform")


def routable(server: Mapping[str, Any]) -> bool:
    """May the public ingress route to this server? Only a gateway that authenticates callers.

    Header mode trusts identity headers as the adapter's statement: routing it publicly would let
    anyone send X-MCP-Human-ID. A gateway-less server enforces nothing: never public either.
    """
    return gateway_on(server) and auth_mode(server) in PUBLIC_AUTH_MODES


def is_remote(server: Mapping[str, Any]) -> bool:
    """A remote server: an upstream URL and no image to run."""
    spec = _spec(server)
    return not spec.get("image") and bool((spec.get("gateway") or {}).get("upstreamURL"))


def image_ref(spec: Mapping[str, Any]) -> str:
    """`image` with `imageTag` applied (upstream: `latest` only when the image carries no tag/digest)."""
    image = str(spec.get("image") or "")
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return f"{image}:{spec.get('imageTag') or 'latest'}"


def labels(name: str) -> dict[str, str]:
    """Labels of every object rendered for server `name` (the cleanup selector uses them)."""
    return {
        NAME_LABEL: name,
        INSTANCE_LABEL: name,
        MANAGED_LABEL: MANAGED_BY,
        "app.kubernetes.io/part-of": "mcp-sentinel",
    }


def selector(name: str) -> str:
    """Label selector of the objects rendered for server `name`."""
    return f"{INSTANCE_LABEL}={name},{MANAGED_LABEL}={MANAGED_BY}"


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Stable digest of a rendered spec (what the Deployment's annotation records)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _object_meta(server: Mapping[str, Any], name: str) -> Obj:
    ns, server_name = _meta(server)
    meta: Obj = {"name": name, "namespace": ns, "labels": labels(server_name)}
    if (server.get("metadata") or {}).get("uid"):
        meta["ownerReferences"] = [owner_reference(server)]  # deletion of the server cleans up (GC)
    return meta


def _gateway_container(server: Mapping[str, Any], settings: RenderSettings) -> Obj:
    ns, name = _meta(server)
    spec = _spec(server)
    gw = spec.get("gateway") or {}
    port = int(gw.get("port") or 8091)
    inventory = int(gw.get("inventoryPort") or 8099)
    upstream = str(gw.get("upstreamURL") or f"http://127.0.0.1:{int(spec.get('port') or 8088)}")
    host = urlsplit(settings.public_base_url).netloc
    allowed_hosts = ([host] if host else []) + [f"{name}.{ns}.svc.cluster.local:*", f"{name}.{ns}.svc:*", f"{name}:*"]
    env: list[Obj] = [
        {"name": "PORT", "value": str(port)},
        {"name": "METRICS_PORT", "value": "9103"},
        {"name": "UPSTREAM_URL", "value": upstream},
        {"name": "POLICY_FILE", "value": f"{POLICY_MOUNT}/policy.json"},
        {"name": "MCP_SERVER_NAME", "value": name},
        {"name": "MCP_SERVER_NAMESPACE", "value": ns},
        {"name": "MCP_CLUSTER_NAME", "value": settings.cluster_name},
        {"name": "INVENTORY_PORT", "value": str(inventory)},
        {"name": "INVENTORY_PUBLIC_KEYS_FILE", "value": "/var/run/mcp-sentinel/inventory/public.pem"},
        {"name": "AUDIT_SPOOL_DIR", "value": SPOOL_DIR},
        {"name": "ALLOWED_HOSTS", "value": ",".join(allowed_hosts)},
    ]
    if gw.get("stripPrefix"):
        env.append({"name": "STRIP_PREFIX", "value": str(gw["stripPrefix"])})
    if settings.token_issuer:
        env += [
            {"name": "PLATFORM_TOKEN_ISSUER", "value": settings.token_issuer},
            {"name": "PLATFORM_JWKS_URL", "value": settings.jwks_url},
        ]
    if settings.public_base_url:
        env.append({"name": "ALLOWED_ORIGINS", "value": settings.public_base_url.rstrip("/")})
    # Quotas are split across replicas (each enforces ceil(limit / replicas): sidecar/quota.py).
    env.append({"name": "QUOTA_REPLICAS", "value": str(max(1, int(spec.get("replicas", 1) or 1)))})
    analytics = spec.get("analytics") or {}
    if analytics.get("disabled") is not True:
        key = analytics.get("apiKeySecretRef") or {"name": f"{name}-ingest-credential", "key": "ANALYTICS_API_KEY"}
        env += [
            {"name": "ANALYTICS_INGEST_URL", "value": str(analytics.get("ingestURL") or settings.ingest_url)},
            {"name": "ANALYTICS_SOURCE", "value": str(analytics.get("source") or f"{name}-gateway")},
            {"name": "ANALYTICS_EVENT_TYPE", "value": str(analytics.get("eventType") or "mcp.request")},
            # This gateway's own credential, bound to this server (never shared between servers).
            {"name": "ANALYTICS_API_KEY", "valueFrom": {"secretKeyRef": {"name": key["name"], "key": key["key"]}}},
        ]
    resources = gw.get("resources") or {"requests": {"cpu": "50m", "memory": "64Mi"},
                                         "limits": {"cpu": "500m", "memory": "128Mi"}}
    return {
        "name": "mcp-gateway",
        "image": str(gw.get("image") or settings.gateway_image),
        "ports": [
            {"name": "gateway", "containerPort": port},
            {"name": "metrics", "containerPort": 9103},
            {"name": "inventory", "containerPort": inventory},
        ],
        "env": env,
        "readinessProbe": {"httpGet": {"path": "/.sentinel/ready", "port": "gateway"}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": "gateway"}, "periodSeconds": 10},
        "resources": resources,
        "securityContext": dict(RESTRICTED),
        "volumeMounts": [
            {"name": "policy", "mountPath": POLICY_MOUNT, "readOnly": True},
            {"name": "audit-spool", "mountPath": SPOOL_DIR},
            {"name": "inventory-keys", "mountPath": "/var/run/mcp-sentinel/inventory", "readOnly": True},
        ],
    }


def _server_container(server: Mapping[str, Any], *, loopback: bool) -> Obj:
    spec = _spec(server)
    port = int(spec.get("port") or 8088)
    env: list[Obj] = [{"name": "HOST", "value": "127.0.0.1" if loopback else "0.0.0.0"},  # the pod IP: no gateway
                      {"name": "PORT", "value": str(port)}]
    env += [{"name": e["name"], "value": str(e.get("value", ""))} for e in spec.get("envVars") or []]
    env += [
        {"name": e["name"], "valueFrom": {"secretKeyRef": dict(e["secretKeyRef"])}}
        for e in spec.get("secretEnvVars") or []
    ]
    container: Obj = {
        "name": "mcp-server",
        "image": image_ref(spec),
        "env": env,
        "resources": spec.get("resources") or {"requests": {"cpu": "50m", "memory": "64Mi"},
                                               "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": dict(RESTRICTED),
    }
    if not loopback:
        container["ports"] = [{"name": "mcp", "containerPort": port}]
    return container


def _strategy(spec: Mapping[str, Any]) -> Obj:
    rollout = spec.get("rollout") or {}
    if rollout.get("strategy") == "Recreate":
        return {"type": "Recreate"}
    # Canary is rolled out as a RollingUpdate here (no traffic split; see docs/decisions.md).
    return {
        "type": "RollingUpdate",
        "rollingUpdate": {
            "maxUnavailable": rollout.get("maxUnavailable", "25%"),
            "maxSurge": rollout.get("maxSurge", "25%"),
        },
    }


def render_deployment(server: Mapping[str, Any], settings: RenderSettings) -> Obj:
    """The Deployment: MCP server + gateway sidecar (image), gateway only (remote), server only (no gateway).

    Raises InvalidServer when there is nothing to run.
    """
    _, name = _meta(server)
    spec = _spec(server)
    gateway = gateway_on(server)
    remote = is_remote(server)
    if not spec.get("image") and not remote:
        raise InvalidServer("spec.image or spec.gateway.upstreamURL is required")
    if remote and not gateway:
        raise InvalidServer("a remote server (gateway.upstreamURL, no image) needs gateway.enabled: true")
    containers: list[Obj] = []
    if not remote:
        containers.append(_server_container(server, loopback=gateway))
    volumes: list[Obj] = []
    pod_labels = {NAME_LABEL: name, INSTANCE_LABEL: name}
    annotations: dict[str, str] = {}
    if gateway:
        containers.append(_gateway_container(server, settings))
        volumes = [
            {"name": "policy", "configMap": {"name": policy_configmap_name(name), "defaultMode": 0o444}},
            {"name": "audit-spool", "emptyDir": {"sizeLimit": "256Mi"}},
            {"name": "inventory-keys", "configMap": {"name": settings.inventory_keys_configmap, "defaultMode": 0o444}},
        ]
        pod_labels["mcp-sentinel.io/gateway-injected"] = "true"
        annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "9103", "prometheus.io/path": "/metrics"}
    if routable(server):
        pod_labels[PUBLIC_GATEWAY_LABEL] = "true"  # the NetworkPolicy admits the ingress only to these
    pod_spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": volumes,
    }
    if spec.get("imagePullSecrets"):
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec["imagePullSecrets"]]
    template_meta: Obj = {"labels": pod_labels}
    if annotations:
        template_meta["annotations"] = annotations
    dep_spec: Obj = {
        "replicas": int(spec.get("replicas", 1)),
        "selector": {"matchLabels": {NAME_LABEL: name, INSTANCE_LABEL: name}},
        "strategy": _strategy(spec),
        "progressDeadlineSeconds": settings.progress_deadline_seconds,
        "revisionHistoryLimit": 5,
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    meta = _object_meta(server, name)
    meta["annotations"] = {SPEC_HASH_ANNOTATION: spec_hash(dep_spec)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": dep_spec}


def render_service(server: Mapping[str, Any]) -> Obj:
    """Cluster-internal Service: the gateway and inventory ports (never the MCP server's own port
    when a gateway fronts it), or the server's port for a gateway-less server."""
    _, name = _meta(server)
    spec = _spec(server)
    if gateway_on(server):
        gw = spec.get("gateway") or {}
        ports = [
            {"name": "gateway", "port": int(gw.get("port") or 8091), "targetPort": "gateway"},
            {"name": "inventory", "port": int(gw.get("inventoryPort") or 8099), "targetPort": "inventory"},
        ]
    else:
        ports = [{"name": "mcp", "port": int(spec.get("servicePort") or 80), "targetPort": "mcp"}]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _object_meta(server, name),
        "spec": {"selector": {NAME_LABEL: name, INSTANCE_LABEL: name}, "ports": ports},
    }


def render_ingress(server: Mapping[str, Any], settings: RenderSettings) -> Obj | None:
    """The public route `/<prefix>(/|$)(.*)` -> gateway port, prefix rewritten away; None when the
    server must not be public (header/none/mtls mode, or no gateway: see `routable`)."""
    if not routable(server):
        return None
    _, name = _meta(server)
    spec = _spec(server)
    prefix = route_prefix(name, spec)
    host = str(spec.get("ingressHost") or urlsplit(settings.public_base_url).hostname or "")
    annotations = {
        "nginx.ingress.kubernetes.io/use-regex": "true",
        "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
        "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
        **{str(k): str(v) for k, v in (spec.get("ingressAnnotations") or {}).items()},
    }
    port = int((spec.get("gateway") or {}).get("port") or 8091)
    rule: Obj = {
        "http": {
            "paths": [
                {
                    "path": f"/{prefix}(/|$)(.*)",
                    "pathType": "ImplementationSpecific",
                    # Only the gateway port: the inventory listener is never routed publicly.
                    "backend": {"service": {"name": name, "port": {"number": port}}},
                }
            ]
        }
    }
    if host:
        rule["host"] = host
    meta = _object_meta(server, name)
    meta["annotations"] = annotations
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {"ingressClassName": str(spec.get("ingressClass") or "nginx"), "rules": [rule]},
    }
