"""The embedded ClickHouse runs concurrent requests concurrently, each with its own settings,
as a real server does (the usage view sends its independent list queries at once)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from localstack.clickhouse_server.engine import Engine
from mcp_sentinel.storage.client import clickhouse_client_from_url


def test_a_slow_statement_does_not_hold_up_other_requests(clickhouse_url: str) -> None:
    slow_done = threading.Event()

    def slow() -> None:
        client = clickhouse_client_from_url(clickhouse_url)
        # ≈8 s: one 0.5 s sleep per one-row block.
        client.query("SELECT sum(sleepEachRow(0.5)) FROM numbers(16) SETTINGS max_block_size = 1")
        slow_done.set()

    worker = threading.Thread(target=slow, daemon=True)
    worker.start()
    client = clickhouse_client_from_url(clickhouse_url)
    # Wait until the slow statement is running, then a quick one must finish before it does.
    running = (
        "SELECT count() FROM system.processes "
        "WHERE query LIKE '%sleepEachRow(0.5)%' AND query NOT LIKE '%processes%'"
    )
    for _ in range(200):
        if client.query(running).result_rows[0][0] or slow_done.is_set():
            break
        threading.Event().wait(0.02)
    assert not slow_done.is_set(), "the slow statement finished before it could be observed running"
    assert client.query("SELECT 42").result_rows[0][0] == 42
    assert not slow_done.is_set(), "a quick request waited for the slow one (requests are serialised)"
    worker.join(timeout=60)
    assert slow_done.is_set()


def test_concurrent_requests_each_see_only_their_own_settings(clickhouse_url: str) -> None:
    sql = "SELECT value FROM system.settings WHERE name = 'max_threads'"
    baseline = clickhouse_client_from_url(clickhouse_url).query(sql).result_rows[0][0]

    def worker(n: int) -> list[str]:
        client = clickhouse_client_from_url(clickhouse_url)
        seen = []
        for _ in range(15):
            settings = {"max_threads": n} if n else {}
            seen.append(str(client.query(sql, settings=settings).result_rows[0][0]))
        return seen

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert results[0] == [baseline] * 15
    for n in range(1, 8):
        assert results[n] == [str(n)] * 15


def test_engine_needs_at_least_one_connection(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Engine(tmp_path, connections=0)


@pytest.mark.parametrize("value", ["0", "four"])
def test_a_bad_connections_setting_stops_the_server_naming_it(tmp_path: Path, value: str) -> None:
    env = {**os.environ, "CLICKHOUSE_CONNECTIONS": value}
    done = subprocess.run(
        [sys.executable, "-m", "localstack.clickhouse_server", "--port", "0", "--path", str(tmp_path / "ch")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "clickhouse server: CLICKHOUSE_CONNECTIONS" in done.stderr
