"""The embedded ClickHouse HTTP server speaks the protocol stock clickhouse-connect and curl expect."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import lz4.frame
import pytest

from mcp_sentinel.storage.client import clickhouse_client_from_url


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_ping_and_root(clickhouse_url: str) -> None:
    for path in ("/ping", "/"):
        with urllib.request.urlopen(clickhouse_url + path, timeout=10) as resp:
            assert resp.read() == b"Ok.\n"


def test_error_code_and_message_pass_through(clickhouse_url: str) -> None:
    status, headers, body = _post(clickhouse_url + "/", b"SELECT * FROM no_such_table_xyz")
    assert status == 500
    assert headers["X-ClickHouse-Exception-Code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception:") and b"no_such_table_xyz" in body


def test_error_surfaces_in_clickhouse_connect(clickhouse_url: str) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    client = clickhouse_client_from_url(clickhouse_url)
    with pytest.raises(DatabaseError, match="code: 62"):
        client.query("SELEC 1")


def test_settings_are_scoped_to_one_request(clickhouse_url: str) -> None:
    client = clickhouse_client_from_url(clickhouse_url)
    sql = "SELECT value FROM system.settings WHERE name = 'max_threads'"
    baseline = client.query(sql).result_rows[0][0]
    assert client.query(sql, settings={"max_threads": 3}).result_rows[0][0] == "3"
    assert client.query(sql).result_rows[0][0] == baseline
    # A bare SET in a request without a session must not outlive that request either.
    client.command("SET max_threads = 5")
    assert client.query(sql).result_rows[0][0] == baseline


def test_unknown_setting_is_an_error(clickhouse_url: str) -> None:
    status, headers, _ = _post(clickhouse_url + "/?no_such_setting_abc=1", b"SELECT 1")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "115"


def test_database_parameter_is_per_request(clickhouse_url: str, ch_database: str) -> None:
    status, _, body = _post(f"{clickhouse_url}/?database={ch_database}", b"SELECT currentDatabase()")
    assert status == 200 and body.strip() == ch_database.encode()
    status, _, body = _post(clickhouse_url + "/", b"SELECT currentDatabase()")
    assert body.strip() == b"default"


def test_query_id_and_format_headers(clickhouse_url: str) -> None:
    status, headers, body = _post(clickhouse_url + "/?query_id=abc-123", b"SELECT 1 AS x FORMAT JSONEachRow")
    assert status == 200 and headers["X-ClickHouse-Query-Id"] == "abc-123"
    assert body == b'{"x":1}\n'


def test_bound_parameters_are_values_not_sql(clickhouse_url: str) -> None:
    client = clickhouse_client_from_url(clickhouse_url)
    evil = "x'); DROP DATABASE default; --"
    assert client.query("SELECT {v:String}", parameters={"v": evil}).result_rows == [(evil,)]


def _lz4_multi_frame_insert(clickhouse_url: str, db: str, rows: list[list[Any]]) -> None:
    client = clickhouse_client_from_url(clickhouse_url, db, compress="lz4")
    client.command("CREATE TABLE big (n UInt32, s String, ts DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY n")
    client.insert("big", rows, column_names=["n", "s", "ts"])


def test_lz4_insert_of_100k_rows_arrives_complete(clickhouse_url: str, ch_database: str) -> None:
    now = datetime.now(UTC)
    rows = [[i, f"row-{i}", now] for i in range(100_000)]
    _lz4_multi_frame_insert(clickhouse_url, ch_database, rows)
    client = clickhouse_client_from_url(clickhouse_url, ch_database)
    assert client.query("SELECT count(), sum(n), uniqExact(s) FROM big").result_rows == [
        (100_000, sum(range(100_000)), 100_000)
    ]


def test_concatenated_lz4_frames_and_gzip_bodies(clickhouse_url: str, ch_database: str) -> None:
    client = clickhouse_client_from_url(clickhouse_url, ch_database)
    client.command("CREATE TABLE t (n UInt32) ENGINE = MergeTree ORDER BY n")
    body = b"".join(lz4.frame.compress(f"{i}\n".encode()) for i in range(10))
    url = f"{clickhouse_url}/?database={ch_database}&query=INSERT%20INTO%20t%20FORMAT%20TabSeparated"
    assert _post(url, body, {"Content-Encoding": "lz4"})[0] == 200
    assert _post(url, gzip.compress(b"100\n101\n"), {"Content-Encoding": "gzip"})[0] == 200
    assert client.query("SELECT count(), sum(n) FROM t").result_rows == [(12, sum(range(10)) + 201)]


def test_insert_with_data_in_body_only(clickhouse_url: str, ch_database: str) -> None:
    client = clickhouse_client_from_url(clickhouse_url, ch_database)
    client.command("CREATE TABLE j (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    body = b'INSERT INTO j FORMAT JSONEachRow\n{"n":1,"s":"a"}\n{"n":2,"s":"b"}\n'
    assert _post(f"{clickhouse_url}/?database={ch_database}", body)[0] == 200
    assert client.query("SELECT n, s FROM j ORDER BY n").result_rows == [(1, "a"), (2, "b")]


def test_undecodable_body_is_a_clear_error(clickhouse_url: str) -> None:
    status, headers, body = _post(clickhouse_url + "/?query=SELECT%201", b"not lz4", {"Content-Encoding": "lz4"})
    assert status == 500 and b"cannot read request body" in body
    status, _, body = _post(clickhouse_url + "/?query=SELECT%201", b"x", {"Content-Encoding": "br"})
    assert status == 500 and b"not supported" in body


def test_form_encoded_query_and_large_parameters(clickhouse_url: str) -> None:
    client = clickhouse_client_from_url(clickhouse_url, form_encode_query_params=True)
    ids = [f"id-{i}" for i in range(3000)]
    assert client.query("SELECT length({ids:Array(String)})", parameters={"ids": ids}).result_rows == [(3000,)]


def test_repeated_and_changing_settings_never_leak(clickhouse_url: str) -> None:
    # The engine only sends the difference between requests; every request must still see
    # exactly baseline + its own settings, in any order.
    client = clickhouse_client_from_url(clickhouse_url)
    sql = "SELECT value FROM system.settings WHERE name = {n:String}"

    def value(name: str, **settings: Any) -> str:
        return str(client.query(sql, parameters={"n": name}, settings=settings).result_rows[0][0])

    base_threads, base_block = value("max_threads"), value("max_block_size")
    for _ in range(2):
        assert value("max_threads", max_threads=3) == "3"
    assert value("max_threads", max_threads=4) == "4"
    assert value("max_block_size", max_threads=4, max_block_size=1234) == "1234"
    assert value("max_threads", max_block_size=1234) == base_threads
    assert value("max_block_size") == base_block
    client.command("SET max_threads = 5")
    assert value("max_threads", max_threads=5) == "5"
    assert value("max_threads") == base_threads
    with pytest.raises(Exception, match="115|no_such_setting"):
        client.query("SELECT 1", settings={"max_threads": 2, "no_such_setting_xyz": 1})
    assert value("max_threads") == base_threads
