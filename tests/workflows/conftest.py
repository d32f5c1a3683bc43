"""Fixtures for the workflow tests: real Temporal, a real local Kubernetes API server, real Postgres."""

from __future__ import annotations

import os
from typing import Any

import pytest

from mcp_sentinel.kube.objects import KubeCluster, Obj
from tests.fixtures.kube import LocalKube, kube_cluster, kube_namespace  # noqa: F401 - re-exported fixtures
from tests.fixtures.postgres import pg_cluster, pg_dsn  # noqa: F401 - re-exported fixtures
from tests.fixtures.temporal import (  # noqa: F401 - re-exported fixtures
    _temporal_ports,
    task_queue,
    temporal_env,
    temporal_metrics_url,
    time_skipping_env,
)


@pytest.fixture(scope="session")
def kubeconfig(kube_cluster: LocalKube) -> str:  # noqa: F811 - the imported fixture
    """Kubeconfig of the local API server (real `kube` stack part, CRDs from knative/crds installed)."""
    return str(kube_cluster.kubeconfig)


@pytest.fixture
def cluster(kubeconfig: str) -> KubeCluster:
    """A `Cluster` over the official client, pointed at the local API server."""
    return KubeCluster(kubeconfig)


@pytest.fixture
def namespace(kube_namespace: str) -> str:  # noqa: F811 - the imported fixture
    """A fresh namespace per test (tests share one API server)."""
    return kube_namespace


def mcp_server(namespace: str, name: str, tools: list[str] | None = None) -> Obj:
    """An MCPServer with the gateway on, header auth, allow-list policy and required sessions."""
    return {
        "apiVersion": "mcpruntime.org/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "example/mcp:1",
            "gateway": {"enabled": True},
            "auth": {"mode": "header"},
            "policy": {"mode": "allow-list", "defaultDecision": "deny"},
            "session": {"required": True},
            "tools": [{"name": t, "sideEffect": "read", "requiredTrust": "low"} for t in tools or ["echo"]],
        },
    }


def grant(namespace: str, name: str, server: str, human: str) -> Obj:
    """A grant letting `human` call read tools on `server`."""
    return {
        "apiVersion": "mcpruntime.org/v1alpha1",
        "kind": "MCPAccessGrant",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serverRef": {"name": server},
            "subject": {"humanID": human},
            "maxTrust": "low",
            "allowedSideEffects": ["read"],
        },
    }


def session(namespace: str, name: str, server: str, human: str, expires_at: str, **spec: Any) -> Obj:
    """An MCPAgentSession for `human` on `server`."""
    return {
        "apiVersion": "mcpruntime.org/v1alpha1",
        "kind": "MCPAgentSession",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "serverRef": {"name": server},
            "subject": {"humanID": human},
            "consentedTrust": "low",
            "expiresAt": expires_at,
            **spec,
        },
    }


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker subprocess (the repo importable, unbuffered logs)."""
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env
