"""The grant form sets a grant's `approval` (issue 18 item 3), in Chromium against the real API and
Kubernetes API server; the stored grant and the rendered policy carry it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from localstack.config import StackConfig
from tests.ui.test_browser_manage import admin_page, browser  # noqa: F401 - fixtures used below

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def test_grant_form_sets_approval(governed_backend: StackConfig, admin_page: Any) -> None:  # noqa: F811
    from playwright.sync_api import expect

    cfg, page = governed_backend, admin_page
    name = f"appr-{uuid.uuid4().hex[:6]}"
    page.click("[data-tab=governance]")
    page.locator("summary", has_text="New grant").click()
    form = page.get_by_test_id("grant-form")
    form.locator("input[name=name]").fill(name)
    form.locator("select[name=server]").select_option("server-a")
    form.locator("input[name=humanID]").fill("alice")
    form.locator("input[name=se-destructive]").check()
    form.locator("input[name=ap-destructive]").check()
    form.locator("input[name=approvalTools]").fill("update_document, create_document")
    form.get_by_role("button", name="Save grant").click()
    row = page.get_by_test_id("grant-table").locator("tr", has_text=name)
    expect(row).to_contain_text("destructive, update_document, create_document")
    headers = {"x-api-key": cfg.admin_api_key}
    stored = httpx.get(cfg.url("api", f"/api/runtime/grants/mcp-servers/{name}"), headers=headers,
                       timeout=30).json()["grant"]  # fmt: skip
    assert stored["approval"] == {"sideEffects": ["destructive"], "tools": ["update_document", "create_document"],
                                  "ttlSeconds": 900}  # fmt: skip
    policy = httpx.get(cfg.url("api", "/api/runtime/policy"), params={"namespace": "mcp-servers", "server": "server-a"},
                       headers=headers, timeout=30).json()  # fmt: skip
    rendered = [g for g in policy["grants"] if g["name"] == name]
    assert rendered and rendered[0]["approval"] == stored["approval"]  # what the sidecar enforces
