"""Offline validators for the deployment manifests (shared by the tests)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from localstack.config import REPO_ROOT

KNATIVE = REPO_ROOT / "knative"
KAFKASOURCE_CRD = REPO_ROOT.parent / "shared" / "schemas" / "knative-kafkasource-crd.yaml"
K8S_VERSION = "1.31"
KNATIVE_GROUPS = ("serving.knative.dev", "sources.knative.dev", "eventing.knative.dev")

# eventing-kafka's KafkaSink ships no model or schema we can use offline: the fields we set, from
# its CRD (eventing.knative.dev/v1alpha1, `kafka-sink.yaml`).
KAFKASINK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "eventing.knative.dev/v1alpha1"},
        "kind": {"const": "KafkaSink"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["topic", "bootstrapServers"],
            "additionalProperties": False,
            "properties": {
                "topic": {"type": "string", "minLength": 1},
                "bootstrapServers": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "contentMode": {"enum": ["binary", "structured"]},
                "numPartitions": {"type": "integer"},
                "replicationFactor": {"type": "integer"},
            },
        },
    },
}


def kustomize_resources(root: Path = KNATIVE) -> list[Path]:
    """Resource files of a kustomization, recursing into sub-kustomizations."""
    kust = yaml.safe_load((root / "kustomization.yaml").read_text())
    out: list[Path] = []
    for entry in kust.get("resources", []):
        path = root / entry
        if path.is_dir():
            out.extend(kustomize_resources(path))
        else:
            out.append(path)
    return out


def documents(paths: list[Path] | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every non-empty YAML document of the kustomization."""
    for path in paths if paths is not None else kustomize_resources():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def validate_core(doc: dict[str, Any]) -> None:
    """kubernetes-validate, strict (unknown fields are errors)."""
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def validate_knative_service(doc: dict[str, Any]) -> None:
    """Knative Serving pydantic models; a lossy round trip means a field the model does not know."""
    from cloudcoil.models.knative_serving.serving.v1 import Service

    model = Service.model_validate(doc)
    dumped = _strip_nulls(model.model_dump(by_alias=True, exclude_none=True, mode="json"))
    lost = _lost(_strip_nulls(doc), dumped)
    if lost:
        raise ValueError(f"fields the Knative model does not know in Service {doc['metadata']['name']}: {lost}")


def _lost(orig: Any, dumped: Any, path: str = "") -> list[str]:
    """Paths present in `orig` that the model dropped or changed (defaults it adds are fine)."""
    if isinstance(orig, dict):
        if not isinstance(dumped, dict):
            return [path or "."]
        out: list[str] = []
        for k, v in orig.items():
            out.extend(_lost(v, dumped[k], f"{path}.{k}") if k in dumped else [f"{path}.{k}"])
        return out
    if isinstance(orig, list):
        if not isinstance(dumped, list) or len(dumped) != len(orig):
            return [path]
        return [p for i, (a, b) in enumerate(zip(orig, dumped, strict=True)) for p in _lost(a, b, f"{path}[{i}]")]
    return [] if orig == dumped or str(orig) == str(dumped) else [path]


def _strict(schema: Any) -> Any:
    """Close every object that lists its properties (what Kubernetes' pruning would silently drop)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in schema
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def kafkasource_schema(version: str) -> dict[str, Any]:
    """The upstream KafkaSource CRD's openAPIV3Schema for `version`, closed against unknown fields."""
    crd = yaml.safe_load(KAFKASOURCE_CRD.read_text())
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
            strict: dict[str, Any] = _strict(schema)
            strict["properties"]["metadata"] = {"type": "object"}
            return strict
    raise KeyError(f"KafkaSource CRD has no version {version}")


def validate_kafkasource(doc: dict[str, Any]) -> None:
    """jsonschema against the upstream CRD."""
    version = doc["apiVersion"].split("/")[1]
    jsonschema.validate(doc, kafkasource_schema(version))
    if version != "v1beta1" and version != "v1":
        raise ValueError(f"unexpected KafkaSource version {version}")


def validate_kafkasink(doc: dict[str, Any]) -> None:
    """jsonschema against the KafkaSink fields we use."""
    jsonschema.validate(doc, KAFKASINK_SCHEMA)


def validate(doc: dict[str, Any]) -> str:
    """Validate one document with the right validator; returns which one ran."""
    api, kind = doc["apiVersion"], doc["kind"]
    if api.startswith("serving.knative.dev/") and kind == "Service":
        validate_knative_service(doc)
        return "knative-serving"
    if api.startswith("sources.knative.dev/") and kind == "KafkaSource":
        validate_kafkasource(doc)
        return "kafkasource-crd"
    if api.startswith("eventing.knative.dev/") and kind == "KafkaSink":
        validate_kafkasink(doc)
        return "kafkasink-schema"
    if api.split("/")[0] in KNATIVE_GROUPS:
        raise ValueError(f"no validator for {api} {kind}")
    validate_core(doc)
    return "kubernetes-validate"
