"""Fixtures for the workflow tests: real Temporal, a real local Kubernetes API server, real Postgres."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_sentinel.stack.config import Ports, StackConfig
from mcp_sentinel.stack.supervisor import PYTHON, Component, Supervisor
from tests.fixtures.postgres import pg_cluster, pg_dsn  # noqa: F401 - re-exported fixtures
from tests.fixtures.temporal import (  # noqa: F401 - re-exported fixtures
    _temporal_ports,
    task_queue,
    temporal_env,
    temporal_metrics_url,
    time_skipping_env,
)
from workflows.cluster import Obj
from workflows.kube import KubeCluster

CRDS = (("MCPServer", "mcpservers"), ("MCPAccessGrant", "mcpaccessgrants"), ("MCPAgentSession", "mcpagentsessions"))


def _crd(kind: str, plural: str) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.mcpruntime.org"},
        "spec": {
            "group": "mcpruntime.org",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """The project's local Kubernetes API server (a real process) with the mcpruntime.org CRDs registered."""
    # A kube stack part / tests/fixtures/kube.py may replace this once it lands; the process is the same.
    data = Path(tempfile.mkdtemp(prefix="sentinel-wf-kube-"))
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    kc = data / "kube" / "kubeconfig"
    comp = Component(
        name="kube-apiserver",
        argv=[
            PYTHON,
            "-m",
            "mcp_sentinel.kube.apiserver",
            "--port",
            str(cfg.ports.kube_api),
            "--kubeconfig-out",
            str(kc),
        ],
        health_check=kc.exists,
        startup_timeout=60.0,
    )
    try:
        with Supervisor(cfg) as sup:
            sup.start(comp)
            cluster = KubeCluster(str(kc))
            for kind, plural in CRDS:
                cluster._call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", _crd(kind, plural))
            yield str(kc)
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def cluster(kubeconfig: str) -> KubeCluster:
    """A `Cluster` over the official client, pointed at the local API server."""
    return KubeCluster(kubeconfig)


@pytest.fixture
def namespace(cluster: KubeCluster) -> str:
    """A fresh namespace per test (tests share one API server)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


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
