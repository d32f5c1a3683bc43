"""Fixtures for the workflow tests: real Temporal, a real local Kubernetes API server, real Postgres."""

from __future__ import annotations

import pytest

from mcp_sentinel.kube.objects import KubeCluster
from tests.fixtures.kube import LocalKube


@pytest.fixture(scope="session")
def kubeconfig(kube_cluster: LocalKube) -> str:
    """Kubeconfig of the local API server (real `kube` stack part, CRDs from knative/crds installed)."""
    return str(kube_cluster.kubeconfig)


@pytest.fixture
def cluster(kubeconfig: str) -> KubeCluster:
    """A `Cluster` over the official client, pointed at the local API server."""
    return KubeCluster(kubeconfig)


@pytest.fixture
def namespace(kube_namespace: str) -> str:
    """A fresh namespace per test (tests share one API server)."""
    return kube_namespace








