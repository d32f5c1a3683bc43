"""Shared test configuration.

Fixture plugins for the real components live in `tests/fixtures/`; pytest only accepts
`pytest_plugins` in the top-level conftest, so every area's plugin is registered here.
"""

import os

pytest_plugins = [
    "tests.fixtures.clickhouse",
    "tests.fixtures.kafka",
    "tests.fixtures.kube",
    "tests.fixtures.postgres",
    "tests.fixtures.sidecar",
    "tests.fixtures.temporal",
    "tests.fixtures.rig",  # after sidecar: it imports that plugin's helpers
]

# Test processes run with test keys, the local stack's published keys and dev logins: every
# component would refuse them at start-up without the local-development flag. Tests of that
# refusal (tests/security/test_working_defaults.py) start processes without it.
os.environ.setdefault("SENTINEL_LOCAL_DEV", "1")
