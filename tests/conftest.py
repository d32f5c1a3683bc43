"""Shared test configuration.

Fixture plugins for the real components live in `tests/fixtures/`; pytest only accepts
`pytest_plugins` in the top-level conftest, so every area's plugin is registered here.
"""

pytest_plugins = [
    "tests.fixtures.clickhouse",
    "tests.fixtures.kafka",
    "tests.fixtures.kube",
    "tests.fixtures.postgres",
    "tests.fixtures.sidecar",
    "tests.fixtures.temporal",
]
