"""Small helpers for the kube tests: raw HTTP against the local API server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import yaml

from tests.fixtures.kube import LocalKube


def token(cluster: LocalKube) -> str:
    """The bearer token from the cluster's kubeconfig."""
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    return str(doc["users"][0]["user"]["token"])


def raw(
    cluster: LocalKube,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    auth: bool = True,
) -> tuple[int, Any]:
    """One HTTP request; returns (status, parsed JSON body or text)."""
    headers = {"Content-Type": content_type}
    if auth:
        headers["Authorization"] = f"Bearer {token(cluster)}"
    data = None if body is None else json.dumps(body)
    resp = httpx.request(method, cluster.url + path, content=data, headers=headers, timeout=10)
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, resp.text


def cm(name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None) -> dict[str, Any]:
    """A ConfigMap body."""
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data or {"k": "v"}}
