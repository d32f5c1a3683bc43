"""Kubernetes objects of a team namespace (pure functions: called from workflow code)."""

from __future__ import annotations

from dataclasses import dataclass

# The identity store's own rules (one definition each): team slugs, and namespaces a team may never take.
from mcp_sentinel.identity.records import RESERVED_NAMESPACES as RESERVED_NAMESPACES
from mcp_sentinel.identity.records import SLUG_RE as SLUG_RE
from mcp_sentinel.kube.objects import Obj

NAMESPACE_PREFIX = "mcp-team-"
MANAGED_BY = {"app.kubernetes.io/managed-by": "mcp-sentinel"}


@dataclass(frozen=True)
class TeamShape:
    """Limits and network neighbours applied to every team namespace."""

    gateway_namespace: str = "mcp-sentinel"
    ingress_namespace: str = "ingress"
    quota_pods: str = "20"
    quota_cpu: str = "8"
    quota_memory: str = "16Gi"
    default_cpu: str = "500m"
    default_memory: str = "512Mi"


def team_namespace(slug: str) -> str:
    """`mcp-team-<slug>`."""
    return NAMESPACE_PREFIX + slug


def slug_problem(slug: str) -> str:
    """Why a slug is unusable ('' when it is fine)."""
    if not SLUG_RE.match(slug):
        return f"invalid team slug {slug!r}: use lower-case letters, digits and '-' (DNS label, at most 42 characters)"
    if team_namespace(slug) in RESERVED_NAMESPACES:
        return f"invalid team slug {slug!r}: reserved"
    return ""


def team_objects(slug: str, team_id: str, owner_user_id: str, shape: TeamShape) -> list[Obj]:
    """The namespace first, then the objects inside it, in creation order."""
    ns = team_namespace(slug)
    labels = {**MANAGED_BY, "mcp-sentinel.io/team-id": team_id, "mcp-sentinel.io/team-slug": slug}

    def meta(name: str) -> Obj:
        return {"name": name, "namespace": ns, "labels": dict(labels)}

    def from_namespace(name: str) -> Obj:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(labels)}},
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": meta("team-quota"),
            "spec": {
                "hard": {
                    "pods": shape.quota_pods,
                    "requests.cpu": shape.quota_cpu,
                    "requests.memory": shape.quota_memory,
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": meta("team-limits"),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": shape.default_cpu, "memory": shape.default_memory},
                        "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                    }
                ]
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("default-deny-ingress"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-gateway-and-ingress"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"podSelector": {}},
                            from_namespace(shape.gateway_namespace),
                            from_namespace(shape.ingress_namespace),
                        ]
                    }
                ],
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta("team-owners"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [
                *(
                    [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": owner_user_id}]
                    if owner_user_id
                    else []
                ),
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": f"mcp-team:{slug}"},
            ],
        },
    ]
