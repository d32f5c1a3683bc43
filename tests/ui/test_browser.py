"""The dashboard in a real Chromium against the whole local stack (every part, as `sentinel up` runs it).

Signs in as the seed user and admin, creates a grant and a session in the governance tab, makes
tool calls through the front door and sidecar, watches the analytics chart count them, revokes
the session and sees the denial in the decision audit. Screenshots land in `<data>/screenshots/`
and are copied to the repo's `.data/screenshots/`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from localstack.components import local_stack
from localstack.config import REPO_ROOT, Ports, StackConfig
from localstack.control import serve_pending
from localstack.supervisor import Supervisor
from tests.fixtures.sidecar import mcp_client
from tests.helpers.browser import ARGS, CHROMIUM, sign_in
from tests.helpers.ui import ADMIN, USER

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]
HUMAN, AGENT, SESSION = "carol", "ui-agent", "sess-carol-ui"


@pytest.fixture(scope="module")
def stack() -> Iterator[StackConfig]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    data = Path(tempfile.mkdtemp(prefix="sentinel-ui-browser-"))
    data.chmod(0o755)  # the postgres part runs as the postgres user
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    stop = threading.Event()

    def up_loop(sup: Supervisor) -> None:  # `sentinel up` answers local restart requests
        while not stop.is_set():
            serve_pending(sup)
            time.sleep(0.1)

    try:
        with Supervisor(cfg) as sup:
            sup.start_all(local_stack(cfg))
            loop = threading.Thread(target=up_loop, args=(sup,), daemon=True)
            loop.start()
            try:
                yield cfg
            finally:
                stop.set()
                loop.join(30)
    finally:
        if os.environ.get("SENTINEL_KEEP_UI_STACK"):
            shutil.copytree(data / "logs", REPO_ROOT / ".data" / "ui-browser-logs", dirs_exist_ok=True)
        shots = data / "screenshots"
        if shots.is_dir():
            shutil.copytree(shots, REPO_ROOT / ".data" / "screenshots", dirs_exist_ok=True)
        shutil.rmtree(data, ignore_errors=True)


def tool_call(cfg: StackConfig, tool: str, args: dict[str, Any]) -> str:
    """One call with the official MCP client through the front door: "ok" or the error text."""
    headers = {"X-MCP-Human-ID": HUMAN, "X-MCP-Agent-ID": AGENT, "X-MCP-Agent-Session": SESSION}

    async def call() -> str:
        try:
            async with mcp_client(cfg.url("front_door", "/server-a/mcp"), headers) as client:
                result = await client.call_tool(tool, args)
                return "error: tool error" if result.is_error else "ok"
        except Exception as exc:  # denials surface as client errors
            return f"error: {exc!r}"[:300]

    # Playwright's sync API owns this thread's event loop; the client gets a loop of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, call()).result(timeout=60)


def publish_drifting_server(cfg: StackConfig) -> None:
    """A catalog server on the sample's port declaring a tool the sample lacks (and not the ones it serves)."""
    body = {"name": "drifty", "scope": "public", "image": "example/drifty:1", "port": cfg.ports.sample_mcp,
            "tools": [{"name": "search", "sideEffect": "read"}, {"name": "ghost_tool", "sideEffect": "read"}],
            "prompts": [{"name": "triage", "requiredTrust": "medium"}],
            "mcpResources": [{"name": "ledger", "uri": "ledger://{account}", "sideEffect": "read"}]}
    r = httpx.post(cfg.url("api", "/api/runtime/servers"), json=body, headers={"x-api-key": cfg.admin_api_key},
                   timeout=60)
    assert r.status_code == 200, r.text


def eventually(check: Callable[[], Any], what: str, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def test_dashboard_end_to_end(stack: StackConfig) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = stack.path("screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    base = stack.url("front_door")
    problems: list[str] = []

    def watch(page: Any) -> None:
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "401" not in m.text else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            # --- the seed user: catalog with connect config, activity, keys --------------------
            publish_drifting_server(stack)
            user = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = user.new_page()
            watch(page)
            page.goto(base + "/")
            page.fill("input[name=email]", USER[0])
            page.fill("input[name=password]", "wrong-password")
            page.click("#signin-submit")
            expect(page.locator("#signin-error")).to_contain_text("Wrong")
            sign_in(page, base, USER)
            cookie = next(c for c in user.cookies() if c["name"] == "mcp_ui_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            expect(page.locator("[data-server=server-a]")).to_be_visible(timeout=20000)
            # Live inventory: the demo server serves what it declares; drifty declares a tool it lacks.
            expect(page.get_by_test_id("drift-ok-server-a")).to_have_text("in sync")
            expect(page.get_by_test_id("drift-missing-drifty")).to_have_text("missing: ghost_tool")
            expect(page.get_by_test_id("drift-undeclared-drifty")).to_contain_text("list_documents")
            drifty = page.locator("[data-server=drifty]")
            expect(drifty.locator("[data-declared=prompts]")).to_contain_text("triage · read · medium")
            expect(drifty.locator("[data-declared=resources]")).to_contain_text("ledger · read · low")
            page.locator("[data-server=server-a] summary", has_text="Connect").click()
            connect = page.get_by_test_id("connect-server-a")
            expect(connect).to_contain_text(f"{base}/server-a/mcp")
            page.get_by_role("button", name="VS Code").click()
            expect(connect).to_contain_text('"type": "http"')
            page.screenshot(path=str(shots / "servers.png"), full_page=True)
            page.click("[data-tab=keys]")
            page.fill("input[name=name]", "browser-key")
            page.get_by_role("button", name="Create key").click()
            expect(page.get_by_test_id("one-time-key")).to_contain_text("mcpu_")
            expect(page.get_by_test_id("keys-table")).to_contain_text("browser-key")
            page.screenshot(path=str(shots / "keys.png"), full_page=True)
            assert page.locator("[data-tab=platform]").count() == 0  # admin-only tabs stay hidden
            user_page = page

            # --- the admin: governance --------------------------------------------------------
            admin = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = admin.new_page()
            watch(page)
            sign_in(page, base, ADMIN)
            page.click("[data-tab=analytics]")
            # Before the first event ClickHouse may have no events table yet: the page shows the API's error.
            first = page.locator("[data-testid=total-events], [data-testid=page-error]").first
            expect(first).to_be_visible()
            before = int(first.inner_text()) if first.get_attribute("data-testid") == "total-events" else 0
            page.click("[data-tab=governance]")
            page.locator("summary", has_text="New grant").click()
            form = page.get_by_test_id("grant-form")
            form.locator("input[name=name]").fill("carol-server-a")
            form.locator("select[name=server]").select_option("server-a")
            form.locator("input[name=humanID]").fill(HUMAN)
            form.locator("input[name=agentID]").fill(AGENT)
            form.locator("textarea[name=toolRules]").fill("search:allow\nread_document:allow:low")
            form.locator("textarea[name=promptRules]").fill("summarize")  # no decision: refused in the page
            form.get_by_role("button", name="Save grant").click()
            expect(page.locator("#toast")).to_contain_text('prompt rule line 1 ("summarize")')
            form.locator("textarea[name=promptRules]").fill("summarize:allow:medium")
            form.locator("textarea[name=resourceRules]").fill("documents:deny")
            form.get_by_role("button", name="Save grant").click()
            grant_row = page.get_by_test_id("grant-table").locator("tr", has_text="carol-server-a")
            expect(grant_row).to_contain_text("summarize:allow:medium")
            expect(grant_row).to_contain_text("documents:deny")
            stored = httpx.get(stack.url("api", "/api/runtime/grants/mcp-servers/carol-server-a"),
                               headers={"x-api-key": stack.admin_api_key}, timeout=30).json()["grant"]
            assert stored["promptRules"] == [{"name": "summarize", "decision": "allow", "requiredTrust": "medium"}]
            assert stored["resourceRules"] == [{"name": "documents", "decision": "deny"}]
            page.locator("summary", has_text="New session").click()
            sform = page.get_by_test_id("session-form")
            sform.locator("input[name=name]").fill(SESSION)
            sform.locator("select[name=server]").select_option("server-a")
            sform.locator("input[name=humanID]").fill(HUMAN)
            sform.locator("input[name=agentID]").fill(AGENT)
            sform.get_by_role("button", name="Create session").click()
            session_row = page.get_by_test_id("session-table").locator("tr", has_text=SESSION)
            expect(session_row).to_contain_text("active")
            page.screenshot(path=str(shots / "governance.png"), full_page=True)

            # --- tool calls through the front door; the chart counts them ---------------------
            seen: list[str] = []

            def allowed() -> bool:
                seen[:] = [tool_call(stack, "search", {"query": "welcome"})]
                return seen[0] == "ok"

            try:
                eventually(allowed, "the new grant and session to reach the sidecar")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last sidecar answer: {seen}") from None
            for _ in range(2):
                assert tool_call(stack, "search", {"query": "plan"}) == "ok"
            page.click("[data-tab=analytics]")

            def counted() -> bool:
                page.click("[data-tab=governance]")
                page.click("[data-tab=analytics]")
                page.wait_for_timeout(500)
                total = page.get_by_test_id("total-events")
                return total.count() > 0 and int(total.inner_text() or 0) >= before + 3

            eventually(counted, "the analytics totals to count the calls")
            series = page.get_by_test_id("chart-series")
            assert int(series.get_attribute("data-points") or 0) >= 3
            expect(page.get_by_test_id("actors-table")).to_contain_text(HUMAN)
            page.screenshot(path=str(shots / "analytics.png"), full_page=True)

            # --- revoke: the next call is denied and the denial shows in the audit -------------
            page.click("[data-tab=governance]")
            row = page.get_by_test_id("session-table").locator("tr", has_text=SESSION)
            row.get_by_role("button", name="Revoke").click()
            expect(page.get_by_test_id("session-table").locator("tr", has_text=SESSION)).to_contain_text("revoked")
            denied = eventually(lambda: (r := tool_call(stack, "search", {"query": "x"})) != "ok" and r,
                                "the revocation to reach the sidecar")
            assert "session" in denied or "401" in denied or "403" in denied, denied

            def denial_listed() -> bool:
                page.click("[data-tab=operations]")
                page.click("[data-tab=governance]")
                expect(page.get_by_test_id("decision-table")).to_be_visible()
                rows = page.get_by_test_id("decision-table").locator("tr", has_text=HUMAN)
                return rows.filter(has_text="deny").count() > 0

            eventually(denial_listed, "the denial in the decision audit")
            # Non-tool calls show their JSON-RPC method, not a generic event type.
            audit = page.get_by_test_id("decision-table")
            expect(audit).to_contain_text("server-a tools/list")
            expect(audit).not_to_contain_text("mcp.request")
            page.screenshot(path=str(shots / "governance-denied.png"), full_page=True)

            # --- operations: every local process healthy; restart one through the workflow ----------
            page.click("[data-tab=operations]")
            components = page.get_by_test_id("components-table")
            expect(components).to_be_visible(timeout=20000)
            for name in ("api", "ui", "front_door", "worker", "sample_mcp", "sidecar-server-a", "clickhouse"):
                expect(page.get_by_test_id(f"health-{name}")).to_have_attribute("data-healthy", "true")
            expect(page.get_by_test_id("components-summary")).to_contain_text(
                f"{components.locator('tbody tr').count()} of {components.locator('tbody tr').count()} healthy")
            old_pid = components.locator("tr", has_text="sample_mcp").locator("td").nth(2).inner_text()
            page.once("dialog", lambda d: d.accept())
            page.get_by_test_id("restart-sample_mcp").click()
            outcome = page.get_by_test_id("restart-outcome")
            expect(outcome).to_contain_text("Restart of sample_mcp: done", timeout=60000)
            expect(page.get_by_test_id("restart-outcomes")).to_contain_text("restarted")
            new_pid = page.get_by_test_id("components-table").locator("tr", has_text="sample_mcp").locator("td").nth(2)
            expect(new_pid).not_to_have_text(old_pid)
            page.screenshot(path=str(shots / "operations.png"), full_page=True)
            page.click("[data-tab=platform]")
            expect(page.get_by_test_id("users-table")).to_contain_text(USER[0])
            expect(page.get_by_test_id("audit-table")).to_contain_text("login")
            page.screenshot(path=str(shots / "platform.png"), full_page=True)

            # --- the user's own activity page (scoped to the user's namespaces) -------------------
            user_page.click("[data-tab=activity]")
            expect(user_page.get_by_test_id("my-events")).to_be_visible(timeout=15000)
            expect(user_page.get_by_test_id("activity-scope")).to_contain_text("teams' namespaces")
            user_page.screenshot(path=str(shots / "activity.png"), full_page=True)

            # --- sign-out flips the UI, and the old cookie is dead --------------------------------
            page.click("#signout")
            expect(page.locator("#signin")).to_be_visible()
            assert page.request.get(base + "/api/auth/me").status == 401
        finally:
            browser.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    assert not [p for p in problems if "TypeError" in p or "ReferenceError" in p], problems
