"""Grant quotas in the Access control tab, in a real Chromium against the real API, Kubernetes API server and UI.

An admin writes quotas in the new-grant form (a malformed line is refused in the page, nothing sent),
saves, sees them in the grant table, and the API holds them in the shared shape.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from localstack.config import StackConfig
from tests.helpers.browser import NS, accept_next_dialog

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def test_quotas_are_written_in_the_grant_form_and_shown(
    governed_backend: StackConfig, admin_page: Any
) -> None:
    from playwright.sync_api import expect

    page = admin_page
    page.click("[data-tab=governance]")
    page.locator("summary", has_text="New grant").click()
    form = page.get_by_test_id("grant-form")
    form.locator("input[name=name]").fill("quota-grant")
    form.locator("select[name=server]").select_option("server-a")
    form.locator("input[name=humanID]").fill("quota-person")
    form.locator("textarea[name=quotas]").fill("100 per hour")
    form.get_by_role("button", name="Save grant").click()
    expect(page.locator("#toast")).to_contain_text('quota line 1 ("100 per hour")')
    form.locator("textarea[name=quotas]").fill("100/3600 session write\n5/60 human tool=search")
    form.get_by_role("button", name="Save grant").click()
    row = page.get_by_test_id("grant-table").locator("tr", has_text="quota-grant")
    expect(row).to_contain_text("100/3600s per session write")
    expect(row).to_contain_text("5/60s per human tool=search")
    stored = httpx.get(governed_backend.url("api", f"/api/runtime/grants/{NS}/quota-grant"),
                       headers={"x-api-key": governed_backend.admin_api_key}, timeout=30).json()["grant"]
    assert stored["quotas"] == [{"limit": 100, "windowSeconds": 3600, "per": "session", "sideEffect": "write"},
                                {"limit": 5, "windowSeconds": 60, "per": "human", "tool": "search"}]
    accept_next_dialog(page)
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#toast")).to_contain_text("Grant quota-grant deleted")
