"""A destructive call waits for an approval given in the browser (issue 18 item 3, "done when").

Real processes: Postgres, the sample MCP server, the API and the UI (the local stack's parts), a
Temporal dev server, a sidecar whose grant asks approval for destructive calls, and the
ApprovalWorkflow worker. An agent's `delete_document` is denied `approval_required`; an admin
approves it in Chromium on the Approvals tab; the same call then succeeds once, and a second
identical call needs (and shows in the browser) a new approval.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from localstack.config import Ports, StackConfig, free_port
from localstack.parts import api, postgres, sample_mcp, ui
from localstack.parts.postgres import postgres_dsn
from localstack.supervisor import Supervisor
from mcp_sentinel.gateway_credentials import GatewayBinding, issue
from tests.fixtures.sidecar import SidecarProcess
from tests.helpers.approvals import ALICE, INITIALIZE, NS, SERVER, DevServer, approvals_worker, policy_text
from tests.helpers.approvals import tool_call as call
from tests.helpers.browser import ARGS, CHROMIUM, sign_in
from tests.helpers.ui import ADMIN
from workflows.approvals.workflows import TASK_QUEUE

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


@dataclass
class Stack:
    cfg: StackConfig
    gateway: SidecarProcess
    session: str = ""

    def call(self, body: dict[str, Any]) -> httpx.Response:
        """One MCP request through the gateway as alice (an MCP session opened on first use)."""
        url = f"http://127.0.0.1:{self.gateway.port}/mcp"
        headers = {**ALICE, "Accept": "application/json, text/event-stream"}
        if not self.session:
            r = httpx.post(url, json=INITIALIZE, headers=headers, timeout=30)
            self.session = r.headers["mcp-session-id"]
            httpx.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                       headers={**headers, "Mcp-Session-Id": self.session}, timeout=30)  # fmt: skip
        return httpx.post(url, json=body, headers={**headers, "Mcp-Session-Id": self.session}, timeout=60)


def _worker_thread(address: str, dsn: str, stop: threading.Event) -> threading.Thread:
    async def main() -> None:
        client = await Client.connect(address)
        async with approvals_worker(client, TASK_QUEUE, dsn):
            # The threading.Event is set from the test's thread: poll it from this loop.
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    temporal = DevServer(tmp_path_factory.mktemp("approvals-temporal") / "temporal.db")
    temporal.start()
    data = Path(tempfile.mkdtemp(prefix="sentinel-ui-approvals-"))
    data.chmod(0o755)  # the postgres part runs as the postgres user
    cfg = StackConfig(data_dir=data, ports=dataclasses.replace(Ports.free(), temporal=temporal.port))
    stop = threading.Event()
    try:
        with Supervisor(cfg) as sup:
            sup.start_all([*postgres.components(cfg), *sample_mcp.components(cfg), *api.components(cfg),
                           *ui.components(cfg)])  # fmt: skip
            worker = _worker_thread(temporal.address, postgres_dsn(cfg), stop)
            policy = data / "docs-policy.json"
            policy.write_text(policy_text())
            gateway = SidecarProcess({
                "PORT": str(free_port()), "METRICS_PORT": str(free_port()), "LISTEN_HOST": "127.0.0.1",
                "UPSTREAM_URL": cfg.url("sample_mcp"), "POLICY_FILE": str(policy),
                "MCP_SERVER_NAME": SERVER, "MCP_SERVER_NAMESPACE": NS, "AUDIT_SPOOL_DIR": str(data / "spool"),
                "APPROVALS_API_URL": cfg.url("api"),
                "ANALYTICS_API_KEY": issue(cfg.ingest_gateway_secret, GatewayBinding(NS, SERVER, "")),
            }, data / "sidecar.log")  # fmt: skip
            try:
                yield Stack(cfg, gateway)
            finally:
                gateway.stop()
                stop.set()
                worker.join(30)
    finally:
        temporal.kill()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def admin_page(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        sign_in(page, stack.cfg.url("ui", "/"), ADMIN)
        yield page
        browser.close()
        assert not problems, problems


def _approval_required(resp: httpx.Response) -> str:
    assert resp.status_code == 403, resp.text
    data = resp.json()["error"]["data"]
    assert data["reason"] == "approval_required" and data["url"].endswith("/#/approvals")
    return str(data["approvalId"])


def test_destructive_call_waits_for_an_approval_given_in_the_browser(stack: Stack, admin_page: Any) -> None:
    from playwright.sync_api import expect

    page = admin_page
    doc = f"doc-{uuid.uuid4().hex[:6]}"
    first = _approval_required(stack.call(call("delete_document", document_id=doc)))

    page.goto(stack.cfg.url("ui", "/#/approvals"))
    row = page.locator("tr", has=page.get_by_test_id(f"approval-args-{first}"))
    expect(row).to_contain_text("delete_document")
    expect(row).to_contain_text(doc)  # the approver sees the exact arguments
    expect(row).to_contain_text("alice via bot")
    row.locator("[data-action=approve]").click()
    expect(page.locator("#toast")).to_contain_text("Approved delete_document")
    expect(page.get_by_test_id(f"approval-args-{first}").locator("xpath=ancestor::tr")).to_contain_text(
        "approved, waiting for the call")

    once = stack.call(call("delete_document", rid=5, document_id=doc))
    assert once.status_code == 200, once.text
    second = _approval_required(stack.call(call("delete_document", document_id=doc)))
    assert second != first

    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_test_id(f"approval-args-{second}")).to_be_visible()
    expect(page.get_by_test_id(f"approval-args-{first}")).to_have_count(0)  # used: no longer listed
