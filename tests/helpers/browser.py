"""Helpers shared by the ui tests and others (their fixtures: tests/ui/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localstack.config import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
NS = "mcp-servers"  # the shared catalog namespace the browser tests publish into


ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def shot(page: Any, name: str) -> None:
    folder = REPO_ROOT / ".data" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def accept_next_dialog(page: Any) -> None:
    page.once("dialog", lambda d: d.accept())


def sign_in(page: Any, base_url: str, who: tuple[str, str]) -> None:
    """Open the dashboard at `base_url` and sign in with the password dialog as `who` (email, password)."""
    from playwright.sync_api import expect

    page.goto(base_url.rstrip("/") + "/")
    dialog = page.locator("#signin")
    expect(dialog).to_be_visible()
    page.fill("input[name=email]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("#signin-submit")
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("who")).to_contain_text(who[0])
