"""ClickHouse storage for audit events: connection, schema migrations, writer and API queries.

Never imported by the sidecar. Everything goes through clickhouse-connect configured by one URL
(`CLICKHOUSE_URL`), so the embedded chdb server and a real ClickHouse are interchangeable.
"""
