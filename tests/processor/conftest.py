pytest_plugins = ["tests.fixtures.clickhouse"]
