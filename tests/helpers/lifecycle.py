"""Shared by the server lifecycle tests: the worker settings and an image MCPServer."""

from __future__ import annotations

from typing import Any

from mcp_sentinel.kube.objects import Obj
from mcp_sentinel.kube.server_render import RenderSettings
from workflows.worker import WorkerSettings

BASE = "https://sentinel.example.com"
SERVER = "mcpruntime.org/v1alpha1"


def settings() -> WorkerSettings:
    return WorkerSettings(render=RenderSettings(public_base_url=BASE, token_issuer=f"{BASE}/api",
                                                progress_deadline_seconds=60))


def image_server(namespace: str, name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": SERVER,
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "ghcr.io/acme/pay",
            "imageTag": "1.0.0",
            "port": 8088,
            "publicPathPrefix": "pay",
            "gateway": {"enabled": True},
            "auth": {"mode": "platform"},
            "tools": [{"name": "charge", "sideEffect": "write"}],
            **spec,
        },
    }
