"""Managing what you publish, in a real Chromium against the real API, Kubernetes API server and UI.

`test_publish_ready_connect_retire`: an admin publishes a server by URL from the Servers tab, watches
the local reconciler bring it to Ready (tests/helpers/server_readiness.py), is refused a token before
holding a grant (the refusal is shown), gets one after, copies the `mcpServers` block, checks it (URL,
bearer token audience) and calls the server with it through the front door, sees the stdio form,
deletes the agent session and the grant from the Access control tab, and retires the server (its
route answers 404).

`test_users_and_team_members`: an admin creates a user (and is told when the email is taken),
creates a team, adds the user as a member, promotes and removes them, and disables the user.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from localstack.config import StackConfig
from tests.helpers.browser import NS, accept_next_dialog, shot
from tests.helpers.server_readiness import STANDIN, become_ready

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]





def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def call_with(entry: dict[str, Any]) -> str:
    """`search` through `entry` (a copied `mcpServers` block) with the official client, off Playwright's loop."""
    from tests.fixtures.sidecar import mcp_client

    async def call() -> str:
        # The connect step just opened the agent session; the gateway learns it at its next policy
        # reload (about a second), as `sentinel connect` allows for: retry that one refusal, bounded.
        deadline = time.monotonic() + 15
        while True:
            try:
                async with mcp_client(entry["url"], entry["headers"]) as client:
                    result = await client.call_tool("search", {"query": "roadmap"})
                return "error" if result.is_error else "allowed"
            except BaseException as exc:  # the client raises an ExceptionGroup around the MCPError
                if "not active on this server" not in repr(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, call()).result(timeout=60)



def test_publish_ready_connect_retire(governed_backend: StackConfig, admin_page: Any) -> None:
    from playwright.sync_api import expect

    cfg, page = governed_backend, admin_page
    name = f"notes-{uuid.uuid4().hex[:6]}"
    expect(page.get_by_test_id("publish")).to_be_visible(timeout=20000)

    # --- publish from the Servers tab; a second publish of the same name is refused, visibly ----
    page.locator("[data-testid=publish] summary").click()
    form = page.get_by_test_id("publish-form")
    for _attempt in range(2):
        form.locator("input[name=name]").fill(name)
        form.locator("select[name=target]").select_option(f"public|{NS}")
        form.locator("input[name=upstreamURL]").fill(cfg.url("sample_mcp"))  # registered by URL: goes live
        form.locator("textarea[name=tools]").fill("search:read\ncreate_note:write:medium")
        form.get_by_role("button", name="Publish").click()
        card = page.locator(f"[data-server={name}]")
        expect(card).to_be_visible()
        if _attempt == 0:
            page.locator("[data-testid=publish] summary").click()
            form = page.get_by_test_id("publish-form")
    expect(page.locator("#toast")).to_contain_text(f"Not published: MCPServer {NS}/{name} already exists")
    # Neither an image nor a URL: the API's refusal is shown as it comes.
    form.locator("input[name=name]").fill(f"{name}-x")
    form.locator("input[name=upstreamURL]").fill("")
    form.get_by_role("button", name="Publish").click()
    expect(page.locator("#toast")).to_contain_text("Not published: image is required (or gateway.upstreamURL")
    expect(card).to_contain_text("create_note · write · medium")

    # --- status: nothing reported yet, then the reconciler's conditions, followed live ----------
    if STANDIN:
        expect(page.get_by_test_id(f"ready-{name}")).to_have_text("status pending")
    status = become_ready(cfg, page, NS, name)
    url = cfg.url("front_door", f"/{name}/mcp")
    # `status.url` shows when the CRD keeps it (knative/crds/mcpserver.yaml declares no `url` in
    # status yet, so the API server prunes it; the connect config then uses the token's audience).
    if "url" in status:
        expect(page.get_by_test_id(f"url-{name}")).to_have_text(status["url"])
    else:
        expect(page.get_by_test_id(f"url-{name}")).to_have_count(0)
    card.locator("summary", has_text="Conditions").click()
    conditions = page.get_by_test_id(f"conditions-{name}")
    for kind in ("Ready", "GatewayReady", "PolicyDelivered"):
        row = conditions.locator("tbody tr").filter(has=page.get_by_role("cell", name=kind, exact=True))
        expect(row).to_contain_text("True")
    shot(page, "manage-ready.png")

    # --- connect: refused without a grant (shown), then a token for the signed-in admin ---------
    card.locator("summary", has_text="Connect").click()
    card.locator("input[name=agentID]").fill("notes-agent")
    page.get_by_test_id(f"mint-{name}").click()
    expect(page.get_by_test_id(f"connect-error-{name}")).to_contain_text("No token:")
    me = page.request.get(cfg.url("ui", "/auth/status")).json()["principal"]
    grant = {"name": f"admin-{name}", "namespace": NS, "serverRef": {"name": name, "namespace": NS},
             "subject": {"humanID": me["subject"]}, "maxTrust": "low", "allowedSideEffects": ["read"],
             "toolRules": [{"name": "search", "decision": "allow"}]}
    r = httpx.post(cfg.url("api", "/api/runtime/grants"), json=grant, headers={"x-api-key": cfg.admin_api_key},
                   timeout=60)
    assert r.status_code == 200, r.text
    page.get_by_test_id(f"mint-{name}").click()
    expect(page.get_by_test_id(f"token-note-{name}")).to_contain_text("notes-agent")
    expect(page.get_by_test_id(f"connect-error-{name}")).to_have_text("")
    config_box = page.get_by_test_id(f"connect-{name}")
    expect(config_box).to_contain_text("Bearer ey")
    page.get_by_test_id(f"copy-{name}").click()
    expect(page.locator("#toast")).to_have_text("Copied")
    copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
    entry = copied["mcpServers"][name]
    assert entry["type"] == "http" and entry["url"] == url
    scheme, token = entry["headers"]["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = jwt_claims(token)
    assert claims["aud"] == url and claims["sub"] == me["subject"], claims
    # The copied block works as is: the official client calls the server through the front door.
    assert call_with(entry) == "allowed", entry["url"]
    card.get_by_role("button", name="stdio").click()
    stdio = json.loads(config_box.inner_text())
    assert stdio == {"mcpServers": {name: {"command": "sentinel", "args": ["connect", name, "--stdio"]}}}
    shot(page, "manage-connect.png")

    # --- Access control: delete the agent session the token came from, then the grant -----------
    page.click("[data-tab=governance]")
    sessions = page.get_by_test_id("session-table")
    row = sessions.locator("tr", has_text=name).filter(has_text="notes-agent")
    expect(row).to_have_count(1, timeout=20000)
    accept_next_dialog(page)
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#toast")).to_contain_text("deleted")
    expect(page.get_by_test_id("session-table").locator("tr", has_text=name)).to_have_count(0)
    grant_row = page.get_by_test_id("grant-table").locator("tr", has_text=f"admin-{name}")
    expect(grant_row).to_have_count(1)
    accept_next_dialog(page)
    grant_row.get_by_role("button", name="Delete").click()
    expect(page.locator("#toast")).to_contain_text(f"Grant admin-{name} deleted")
    expect(page.get_by_test_id("grant-table").locator("tr", has_text=f"admin-{name}")).to_have_count(0)

    # --- retire ---------------------------------------------------------------------------------
    page.click("[data-tab=servers]")
    accept_next_dialog(page)
    page.get_by_test_id(f"retire-{name}").click()
    expect(page.locator("#toast")).to_contain_text(f"Server {name} retired")
    expect(page.locator(f"[data-server={name}]")).to_have_count(0)
    gone = httpx.get(cfg.url("api", f"/api/runtime/servers/{NS}/{name}?live=false"),
                     headers={"x-api-key": cfg.admin_api_key}, timeout=60)
    assert gone.status_code == 404, gone.text
    # Its route went with it (the reconciler drops the route, then stops the sidecar).
    deadline = time.monotonic() + 15
    while (code := httpx.post(url, json={}, timeout=10).status_code) != 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert code == 404


def test_users_and_team_members(governed_backend: StackConfig, admin_page: Any) -> None:
    from playwright.sync_api import expect

    page = admin_page
    email = f"dana-{uuid.uuid4().hex[:6]}@example.org"
    slug = f"notes{uuid.uuid4().hex[:6]}"

    # --- Platform: create a user; the same email again is refused, in words ----------------------
    page.click("[data-tab=platform]")
    form = page.get_by_test_id("user-form")
    for _attempt in range(2):
        form.locator("input[name=email]").fill(email)
        form.locator("input[name=password]").fill("a-long-password-1!")
        form.get_by_role("button", name="Create user").click()
        if _attempt == 0:
            expect(page.get_by_test_id("users-table")).to_contain_text(email)
            form = page.get_by_test_id("user-form")
    expect(page.locator("#toast")).to_contain_text("Not created: a user with this email already exists")
    page.locator("form", has=page.locator("input[name=slug]")).locator("input[name=slug]").fill(slug)
    page.locator("input[name=name][placeholder=Payments]").fill("Notes team")
    page.get_by_role("button", name="Create team").click()
    expect(page.locator("#toast")).to_contain_text("Team created")

    # --- Teams: add the user, promote, remove -----------------------------------------------------
    page.click("[data-tab=teams]")
    team = page.locator(f"[data-team={slug}]")
    expect(team).to_be_visible(timeout=20000)
    team.locator("summary", has_text="Add a member").click()
    add = page.get_by_test_id(f"add-member-{slug}")
    add.locator("select[name=user]").select_option(label=email)
    add.get_by_role("button", name="Add member").click()
    row = page.get_by_test_id(f"members-{slug}").locator("tr", has_text=email)
    expect(row.locator(".badge")).to_have_text("member")  # the role badge (the buttons also say "owner")
    row.get_by_role("button", name="Make owner").click()
    expect(page.locator("#toast")).to_contain_text(f"{email} is now owner")
    row = page.get_by_test_id(f"members-{slug}").locator("tr", has_text=email)
    expect(row.locator(".badge")).to_have_text("owner")
    expect(row.get_by_role("button", name="Make member")).to_be_visible()
    shot(page, "manage-teams.png")
    accept_next_dialog(page)
    page.get_by_test_id(f"members-{slug}").locator("tr", has_text=email).get_by_role("button", name="Remove").click()
    expect(page.locator("#toast")).to_contain_text(f"{email} removed")
    expect(page.get_by_test_id(f"members-{slug}").locator("tr", has_text=email)).to_have_count(0)

    # --- Platform: disable the user ----------------------------------------------------------------
    page.click("[data-tab=platform]")
    user_row = page.get_by_test_id("users-table").locator("tr", has_text=email)
    accept_next_dialog(page)
    user_row.get_by_role("button", name="Disable").click()
    user_row = page.get_by_test_id("users-table").locator("tr", has_text=email)
    expect(user_row.locator(".badge", has_text="disabled")).to_be_visible()
    expect(user_row.get_by_role("button", name="Enable")).to_be_visible()


def test_grant_form_sets_approval(governed_backend: StackConfig, admin_page: Any) -> None:
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
