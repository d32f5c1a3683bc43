"""An approval survives restarts of the worker and of the Temporal server (SQLite-backed dev server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.approvals import DevServer, approvals_worker
from tests.helpers.approvals import approval_request as call
from workflows.approvals.client import decide, get_approval, request_or_consume

pytestmark = pytest.mark.asyncio(loop_scope="session")


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
    client = await dev_server.client()
    async with approvals_worker(client, task_queue, pg_dsn):
        pending = await request_or_consume(client, req, task_queue=task_queue)
    assert pending.status == "pending"

    dev_server.kill()  # worker stopped above, server killed: both restart with nothing in memory
    dev_server.start()
    client = await dev_server.client()
    async with approvals_worker(client, task_queue, pg_dsn):
        assert (await get_approval(client, pending.approval_id))["status"] == "pending"
        assert await decide(client, pending.approval_id, approve=True, by="owner@example.com") == "approved"

    dev_server.kill()
    dev_server.start()
    client = await dev_server.client()
    async with approvals_worker(client, task_queue, pg_dsn):
        assert (await get_approval(client, pending.approval_id))["status"] == "approved"
        used = await request_or_consume(client, req, task_queue=task_queue)
        assert used.status == "used" and used.approval_id == pending.approval_id
        again = await request_or_consume(client, req, task_queue=task_queue)
        assert again.status == "pending" and again.approval_id != pending.approval_id
