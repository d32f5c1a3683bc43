"""Admission in the local Kubernetes API server: object metadata rules, kind-specific checks, Deployment status.

What a real API server's validation and admission chain does for the kinds we serve, kept apart
from the store's bookkeeping (resource versions, history, watches, garbage collection).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
from typing import Any

from localstack.kube_apiserver.kinds import ResourceType, from_crd
from localstack.kube_apiserver.status import (
    JSON,
    bad_request,
    cause,
    invalid,
)

Key = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace, name)

CRD_KEY: Key = ("apiextensions.k8s.io", "customresourcedefinitions")
NS_KEY: Key = ("", "namespaces")
DEPLOY_KEY: Key = ("apps", "deployments")
SECRET_KEY: Key = ("", "secrets")
CONFIGMAP_KEY: Key = ("", "configmaps")
# Deployment readiness control for tests and the local stack: "hold" keeps a rollout unready.
ROLLOUT_ANNOTATION = "kube.mcp-sentinel.dev/rollout"
# Kinds whose delete answers with the object rather than a Success Status (as upstream registries do).
RETURNS_DELETED_OBJECT = {NS_KEY, ("", "services"), ("", "pods")}

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QNAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_GEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QNAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def now_rfc3339() -> str:
    """Current UTC time the way Kubernetes renders metav1.Time (second precision, `Z`)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: JSON) -> JSON:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    return meta


def validate_meta(rt: ResourceType, obj: JSON) -> None:
    meta = obj["metadata"]
    name = str(meta.get("name", ""))
    causes: list[JSON] = []
    pattern, limit = (_LABEL, 63) if rt.key == NS_KEY else (_SUBDOMAIN, 253)
    if not pattern.match(name) or len(name) > limit:
        what = "RFC 1123 label" if rt.key == NS_KEY else "RFC 1123 subdomain"
        causes.append(
            cause(
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": a lowercase {what} must consist of lower case alphanumeric '
                "characters, '-' or '.', and must start and end with an alphanumeric character",
            )
        )
    for field_name in ("labels", "annotations"):
        values = meta.get(field_name)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            causes.append(cause("FieldValueTypeInvalid", f"metadata.{field_name}", "must be a map of strings"))
            continue
        for k, v in values.items():
            prefix, _, short = k.rpartition("/")
            if (prefix and not _SUBDOMAIN.match(prefix)) or not _QNAME.match(short) or len(short) > 63:
                causes.append(
                    cause(
                        "FieldValueInvalid",
                        f"metadata.{field_name}",
                        f"Invalid value: \"{k}\": name part must consist of alphanumeric characters, "
                        "'-', '_' or '.'",
                    )
                )
            elif field_name == "labels" and (len(v) > 63 or not _LABEL_VALUE.match(v)):
                causes.append(
                    cause(
                        "FieldValueInvalid",
                        "metadata.labels",
                        f"Invalid value: \"{v}\": a valid label must be an empty string or consist of "
                        "alphanumeric characters, '-', '_' or '.'",
                    )
                )
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)

def admit(rt: ResourceType, obj: JSON) -> None:
    """Per-kind defaulting and validation (what registry strategies and CRD schemas do)."""
    meta = obj["metadata"]
    name = str(meta.get("name", ""))
    if rt.key == NS_KEY:
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
    elif rt.key == SECRET_KEY:
        data = obj.setdefault("data", {}) or {}
        for k, v in (obj.pop("stringData", None) or {}).items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data
        obj.setdefault("type", "Opaque")
    elif rt.key == CONFIGMAP_KEY:
        bad = [k for k, v in (obj.get("data") or {}).items() if not isinstance(v, str)]
        if bad:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [cause("FieldValueTypeInvalid", f"data[{k}]", "must be a string") for k in bad],
            )
    elif rt.key == CRD_KEY:
        from_crd(obj)  # raises 422 on an unusable CRD before anything is stored
        spec_names = (obj.get("spec") or {}).get("names") or {}
        obj["status"] = {
            "acceptedNames": copy.deepcopy(spec_names),
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now_rfc3339(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now_rfc3339(),
                },
            ],
            "storedVersions": [v["name"] for v in obj["spec"].get("versions", []) if v.get("storage")],
        }
    if not rt.builtin:
        version = obj.get("apiVersion", "").rpartition("/")[2] or rt.versions[0]
        schema = rt.schemas.get(version)
        if schema is not None:
            schema.admit(obj)
            causes = schema.causes(obj)
            if causes:
                raise invalid(rt.kind, rt.group, name, causes)
    validate_meta(rt, obj)

def deployment_status(obj: JSON) -> None:
    replicas = int((obj.get("spec") or {}).get("replicas", 1))
    obj.setdefault("spec", {})["replicas"] = replicas
    meta = obj["metadata"]
    held = (meta.get("annotations") or {}).get(ROLLOUT_ANNOTATION) == "hold"
    ready = 0 if held else replicas
    status: JSON = {"observedGeneration": meta.get("generation", 1), "replicas": replicas, "updatedReplicas": ready}
    if ready:
        status["readyReplicas"] = ready
        status["availableReplicas"] = ready
    if replicas - ready:
        status["unavailableReplicas"] = replicas - ready
    ts = now_rfc3339()
    status["conditions"] = [
        {
            "type": "Available",
            "status": "True" if ready == replicas else "False",
            "reason": "MinimumReplicasAvailable" if ready == replicas else "MinimumReplicasUnavailable",
            "lastUpdateTime": ts,
            "lastTransitionTime": ts,
        },
        {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable" if not held else "ReplicaSetUpdated",
            "lastUpdateTime": ts,
            "lastTransitionTime": ts,
        },
    ]
    obj["status"] = status

# ----- writes ------------------------------------------------------------------------

def check_body(rt: ResourceType, body: Any, version: str) -> JSON:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    api_version = body.get("apiVersion")
    if api_version and api_version != rt.api_version(version):
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({rt.api_version(version)})"
        )
    kind = body.get("kind")
    if kind and kind != rt.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
    obj = copy.deepcopy(body)
    obj["apiVersion"] = rt.api_version(version)
    obj["kind"] = rt.kind
    _meta(obj)
    return obj
