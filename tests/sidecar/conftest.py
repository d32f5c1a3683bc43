"""Sidecar test fixtures (shared ones live in tests/fixtures/sidecar.py)."""

from tests.fixtures.sidecar import *  # noqa: F403
