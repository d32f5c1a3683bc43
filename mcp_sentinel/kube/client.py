"""Wiring of the official `kubernetes` client: in-cluster or kubeconfig, and CRD installation.

The same code runs against a real cluster and the local API server; only the configuration
(in-cluster service account, or `KUBECONFIG`) differs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config import incluster_config

from mcp_sentinel.kube.errors import AlreadyExists, KubeError, NotFound, Unavailable, translate

# The CRDs are manifests of the repository (knative/crds), applied from a checkout by an installer.
CRD_DIR = Path(__file__).resolve().parents[2] / "knative" / "crds"


def load_kube(environ: Mapping[str, str]) -> k8s.ApiClient:
    """An ApiClient for the cluster described by `environ` (never touches global client state).

    In a pod (`KUBERNETES_SERVICE_HOST` set) the service-account config is used; otherwise the
    kubeconfig named by `KUBECONFIG` (first entry of a path list), else `~/.kube/config`.
    """
    if environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        incluster_config.InClusterConfigLoader(
            token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
            cert_filename=incluster_config.SERVICE_CERT_FILENAME,
            environ=dict(environ),
        ).load_and_set(configuration)  # type: ignore[no-untyped-call]
        return k8s.ApiClient(configuration)
    raw = environ.get("KUBECONFIG") or str(Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config")
    path = raw.split(os.pathsep)[0]
    if not Path(path).exists():
        raise Unavailable(f"no Kubernetes configuration: kubeconfig {path} does not exist and not running in a cluster")
    api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=path, persist_config=False
    )
    return api


def crd_paths() -> list[Path]:
    """The project's CRD manifests (`knative/crds/*.yaml`)."""
    return sorted(CRD_DIR.glob("*.yaml"))


def _crd_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    return [
        doc
        for path in paths
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition"
    ]


def _established(crd: Any) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def install_crds(api: k8s.ApiClient, paths: Iterable[Path] | None = None, *, timeout: float = 30.0) -> list[str]:
    """Create or replace each CRD in `paths` and wait until all are Established; returns names.

    Idempotent: an existing CRD is replaced with the file's spec (keeping its resourceVersion).
    """
    # Bodies are the manifests' own dicts (the client serialises them as-is), hence Any.
    ext: Any = k8s.ApiextensionsV1Api(api)
    names: list[str] = []
    for doc in _crd_documents(crd_paths() if paths is None else paths):
        name = doc["metadata"]["name"]
        names.append(name)
        try:
            translate(partial(ext.create_custom_resource_definition, doc))
        except AlreadyExists:
            for _ in range(5):
                current = translate(partial(ext.read_custom_resource_definition, name))
                rv = current.metadata.resource_version if current.metadata else None
                body = {**doc, "metadata": {**doc["metadata"], "resourceVersion": rv}}
                try:
                    translate(partial(ext.replace_custom_resource_definition, name, body))
                    break
                except KubeError as exc:
                    if exc.status != 409:
                        raise
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        for name in list(pending):
            try:
                if _established(translate(partial(ext.read_custom_resource_definition, name))):
                    pending.discard(name)
            except NotFound:
                pass
        if pending:
            if time.monotonic() > deadline:
                raise Unavailable(f"CRDs not established after {timeout:.0f}s: {sorted(pending)}")
            time.sleep(0.2)
    return names
