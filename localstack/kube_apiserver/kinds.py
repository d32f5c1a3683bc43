"""The resource types the server serves: built-in kinds the product uses, plus registered CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field

from localstack.kube_apiserver.schema import StructuralSchema
from localstack.kube_apiserver.status import JSON, ApiError, cause, invalid

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (`group`/`plural`), served under one or more versions."""

    group: str
    versions: tuple[str, ...]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    tracks_generation: bool = False
    builtin: bool = True
    # Per-version structural schema (custom resources only).
    schemas: dict[str, StructuralSchema] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: objects are stored once per group/plural, whatever version wrote them."""
        return (self.group, self.plural)

    def api_version(self, version: str | None = None) -> str:
        """`v1` for core, `<group>/<version>` otherwise (first served version by default)."""
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v


def builtin_types() -> list[ResourceType]:
    """The core kinds the product reads and writes."""
    return [
        ResourceType("", ("v1",), "namespaces", "namespace", "Namespace", False, ("ns",), has_status=True),
        ResourceType("", ("v1",), "configmaps", "configmap", "ConfigMap", True, ("cm",)),
        ResourceType("", ("v1",), "secrets", "secret", "Secret", True),
        ResourceType("", ("v1",), "serviceaccounts", "serviceaccount", "ServiceAccount", True, ("sa",)),
        # Read by `sentinel status/logs/events --cluster`; written by whatever stands in for the kubelet.
        ResourceType("", ("v1",), "pods", "pod", "Pod", True, ("po",), has_status=True),
        ResourceType("", ("v1",), "events", "event", "Event", True, ("ev",)),
        ResourceType(
            "", ("v1",), "resourcequotas", "resourcequota", "ResourceQuota", True, ("quota",), has_status=True
        ),
        ResourceType("", ("v1",), "limitranges", "limitrange", "LimitRange", True, ("limits",)),
        ResourceType("", ("v1",), "services", "service", "Service", True, ("svc",), has_status=True),
        ResourceType(
            "apps",
            ("v1",),
            "deployments",
            "deployment",
            "Deployment",
            True,
            ("deploy",),
            has_status=True,
            tracks_generation=True,
        ),
        ResourceType(
            "networking.k8s.io",
            ("v1",),
            "networkpolicies",
            "networkpolicy",
            "NetworkPolicy",
            True,
            ("netpol",),
            tracks_generation=True,
        ),
        ResourceType(
            "networking.k8s.io", ("v1",), "ingresses", "ingress", "Ingress", True, ("ing",), has_status=True,
            tracks_generation=True,
        ),
        ResourceType("rbac.authorization.k8s.io", ("v1",), "roles", "role", "Role", True),
        ResourceType("rbac.authorization.k8s.io", ("v1",), "rolebindings", "rolebinding", "RoleBinding", True),
        ResourceType(
            "apiextensions.k8s.io",
            ("v1",),
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            False,
            ("crd", "crds"),
            has_status=True,
            tracks_generation=True,
        ),
    ]


def _crd_invalid(name: str, field_name: str, message: str) -> ApiError:
    return invalid(
        "CustomResourceDefinition", "apiextensions.k8s.io", name, [cause("FieldValueRequired", field_name, message)]
    )


def from_crd(crd: JSON) -> ResourceType:
    """Build the served resource type from an `apiextensions.k8s.io/v1` CRD, or raise 422."""
    name = str((crd.get("metadata") or {}).get("name", ""))
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    if not group:
        raise _crd_invalid(name, "spec.group", "Required value")
    if not plural:
        raise _crd_invalid(name, "spec.names.plural", "Required value")
    if not names.get("kind"):
        raise _crd_invalid(name, "spec.names.kind", "Required value")
    if name != f"{plural}.{group}":
        raise invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            name,
            [
                cause(
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            ],
        )
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        raise invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            name,
            [
                cause(
                    "FieldValueNotSupported",
                    "spec.scope",
                    f'Unsupported value: "{scope}": supported values: "Cluster", "Namespaced"',
                )
            ],
        )
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    if not versions:
        raise _crd_invalid(
            name, "spec.versions", "Required value: must have exactly one version marked as storage version"
        )
    if sum(1 for v in spec.get("versions") or [] if v.get("storage")) != 1:
        raise invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            name,
            [
                cause(
                    "FieldValueInvalid",
                    "spec.versions",
                    "Invalid value: must have exactly one version marked as storage version",
                )
            ],
        )
    schemas: dict[str, StructuralSchema] = {}
    has_status = False
    for v in versions:
        openapi = ((v.get("schema") or {}).get("openAPIV3Schema")) or None
        if openapi is not None:
            try:
                schemas[v["name"]] = StructuralSchema(openapi)
            except Exception as exc:  # jsonschema.SchemaError and friends: report, do not crash
                raise invalid(
                    "CustomResourceDefinition",
                    "apiextensions.k8s.io",
                    name,
                    [
                        cause(
                            "FieldValueInvalid",
                            f"spec.versions[{v['name']}].schema.openAPIV3Schema",
                            f"Invalid value: {exc}",
                        )
                    ],
                ) from exc
        if "status" in (v.get("subresources") or {}):
            has_status = True
    # Storage version first so it is the preferred version in discovery.
    ordered = sorted(versions, key=lambda v: not v.get("storage"))
    return ResourceType(
        group=group,
        versions=tuple(str(v["name"]) for v in ordered),
        plural=plural,
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=scope == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        has_status=has_status,
        tracks_generation=True,
        builtin=False,
        schemas=schemas,
    )
