"""Fixtures for the kube tests."""

from tests.fixtures.kube import *  # noqa: F403 - kube_cluster, kube_namespace
