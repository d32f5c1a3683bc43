"""An embedded ClickHouse server: the chdb engine behind the ClickHouse HTTP interface.

chdb ships the real ClickHouse engine as a library with no server binary, and only one process
may own a data directory. This package runs that one process and speaks enough of the HTTP
interface that stock `clickhouse_connect.get_client(host=, port=)` works unchanged, so product
code moves to a real ClickHouse server by changing `CLICKHOUSE_URL` only.
"""
