"""The kubeconfig the local API server writes for the official client."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

CONTEXT = "sentinel-local"


def kubeconfig_text(server: str, token: str, namespace: str = "default") -> str:
    """A one-cluster, one-user (bearer token) kubeconfig."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfig(path: Path, server: str, token: str) -> None:
    """Write the kubeconfig by atomic rename (readable by the owner only: it holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(kubeconfig_text(server, token))
    os.replace(tmp, path)
