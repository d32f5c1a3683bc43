"""Hostile-input fixtures: the real sidecar stack (shared fixture) and the API with a real Postgres."""

from tests.fixtures.postgres import *  # noqa: F403
from tests.fixtures.sidecar import *  # noqa: F403
