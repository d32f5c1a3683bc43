"""The dashboard's management actions (issue 15) through the UI's `/api` proxy, against the real API.

Retiring servers, deleting grants and sessions, team members, user creation and token minting all
go through the one proxy: a session-backed change needs the session's CSRF token and our origin,
and an API refusal reaches the page as the API worded it (status, code and message), never
swallowed or rewritten.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from functions.ui.app import create_app
from localstack.config import StackConfig
from tests.helpers.ui import ADMIN, USER, login, ui_settings

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def ui(governed_backend: StackConfig, tmp_path: Path) -> Iterator[Any]:
    """Factory: a signed-in TestClient over a fresh UI app; returns (client, csrf, principal)."""
    clients: list[TestClient] = []

    def make(who: tuple[str, str]) -> tuple[TestClient, str, dict[str, Any]]:
        settings = ui_settings(governed_backend, tmp_path / f"sessions-{len(clients)}")
        client = TestClient(create_app(settings), base_url="https://ui.test")
        client.__enter__()
        clients.append(client)
        body = login(client, who)
        return client, body["csrf_token"], body["principal"]

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def admin_api(cfg: StackConfig, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The API directly with the service admin key (test setup and checks, not through the UI)."""
    return httpx.request(method, cfg.url("api", path), headers={"x-api-key": cfg.admin_api_key}, timeout=60, **kwargs)


def publish(cfg: StackConfig) -> str:
    name = f"ui-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "scope": "public", "image": "example/notes:1", "gateway": {"enabled": True},
            "tools": [{"name": "search", "sideEffect": "read"}]}
    r = admin_api(cfg, "POST", "/api/runtime/servers", json=body)
    assert r.status_code == 200, r.text
    return name


def test_retiring_a_server_needs_the_sessions_csrf_token_and_our_origin(governed_backend: StackConfig, ui: Any) -> None:
    client, csrf, _ = ui(ADMIN)
    name = publish(governed_backend)
    path = f"/api/runtime/servers/mcp-servers/{name}"
    refused = client.delete(path)
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_rejected"
    cross_site = client.delete(path, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert cross_site.status_code == 403 and cross_site.json()["error"] == "csrf_rejected"
    assert admin_api(governed_backend, "GET", f"{path}?live=false").status_code == 200  # the API never saw them
    done = client.delete(path, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.text
    assert done.json() == {"success": True, "namespace": "mcp-servers", "name": name}
    assert admin_api(governed_backend, "GET", f"{path}?live=false").status_code == 404
    again = client.delete(path, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 404 and again.json()["error"] == "not_found"


def test_api_refusals_of_management_actions_reach_the_page_unchanged(governed_backend: StackConfig, ui: Any) -> None:
    user, user_csrf, _ = ui(USER)
    admin, admin_csrf, _ = ui(ADMIN)
    name = publish(governed_backend)
    # A user retiring a catalog server they do not administer: the API's 403, word for word.
    r = user.delete(f"/api/runtime/servers/mcp-servers/{name}", headers={"X-CSRF-Token": user_csrf})
    assert r.status_code == 403 and r.json() == {"error": "forbidden", "message": "forbidden namespace"}
    # Users cannot create users; admins cannot create one twice.
    r = user.post("/api/users", json={"email": "x@example.org", "role": "user"}, headers={"X-CSRF-Token": user_csrf})
    assert r.status_code == 403, r.text
    email = f"new-{uuid.uuid4().hex[:6]}@example.org"
    first = admin.post("/api/users", json={"email": email, "role": "user"}, headers={"X-CSRF-Token": admin_csrf})
    assert first.status_code == 201 and first.json()["invited"] is True, first.text
    dup = admin.post("/api/users", json={"email": email, "role": "user"}, headers={"X-CSRF-Token": admin_csrf})
    assert dup.status_code == 409
    assert dup.json() == {"error": "conflict", "message": "a user with this email already exists"}
    # Team membership for a team the user is not in: refused before any lookup.
    r = user.put("/api/runtime/teams/nope/members/someone", json={"role": "member"},
                 headers={"X-CSRF-Token": user_csrf})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert admin_api(governed_backend, "DELETE", f"/api/runtime/servers/mcp-servers/{name}").status_code == 200


def test_team_members_are_managed_through_the_proxy(governed_backend: StackConfig, ui: Any) -> None:
    admin, csrf, _ = ui(ADMIN)
    slug = f"t{uuid.uuid4().hex[:8]}"
    made = admin.post("/api/runtime/teams", json={"slug": slug, "name": "UI team"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    team = made.json()["team"]["id"]
    email = f"member-{uuid.uuid4().hex[:6]}@example.org"
    created = admin.post(f"/api/runtime/teams/{team}/users", json={"email": email, "password": "a-long-password-1!"},
                         headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    uid = created.json()["user"]["id"]
    assert admin.put(f"/api/runtime/teams/{team}/members/{uid}", json={"role": "owner"}).status_code == 403
    owner = admin.put(f"/api/runtime/teams/{team}/members/{uid}", json={"role": "owner"},
                      headers={"X-CSRF-Token": csrf})
    assert owner.status_code == 200 and owner.json()["membership"]["role"] == "owner"
    bad = admin.put(f"/api/runtime/teams/{team}/members/{uid}", json={"role": "boss"}, headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 400 and bad.json()["message"] == "role must be owner or member"
    gone = admin.delete(f"/api/runtime/teams/{team}/members/{uid}", headers={"X-CSRF-Token": csrf})
    assert gone.status_code == 200, gone.text
    members = admin.get(f"/api/runtime/teams/{team}/members").json()["members"]
    assert uid not in {m["user_id"] for m in members}


def test_agent_token_for_the_signed_in_user_and_its_refusals(governed_backend: StackConfig, ui: Any) -> None:
    """The connect panel's two calls: an adapter session (needs a grant), then a token for it."""
    admin, csrf, principal = ui(ADMIN)
    name = publish(governed_backend)
    ask = {"serverName": name, "namespace": "mcp-servers", "agentID": "ui-agent"}
    no_grant = admin.post("/api/runtime/adapter/sessions", json=ask, headers={"X-CSRF-Token": csrf})
    assert no_grant.status_code in (403, 404), no_grant.text  # shown on the page as the API words it
    assert no_grant.json()["message"]
    grant = {"name": f"g-{name}", "namespace": "mcp-servers", "serverRef": {"name": name, "namespace": "mcp-servers"},
             "subject": {"humanID": principal["subject"]}, "maxTrust": "low", "allowedSideEffects": ["read"],
             "toolRules": [{"name": "search", "decision": "allow"}]}
    assert admin_api(governed_backend, "POST", "/api/runtime/grants", json=grant).status_code == 200
    session = admin.post("/api/runtime/adapter/sessions", json=ask, headers={"X-CSRF-Token": csrf})
    assert session.status_code == 200, session.text
    body = {"namespace": "mcp-servers", "session": session.json()["name"]}
    assert admin.post("/api/agent-tokens", json=body).status_code == 403  # no CSRF token: refused at the UI
    token = admin.post("/api/agent-tokens", json=body, headers={"X-CSRF-Token": csrf})
    assert token.status_code == 200, token.text
    assert token.json()["resource"] == governed_backend.url("front_door", f"/{name}/mcp")
    assert token.json()["access_token"].count(".") == 2
    # Deleting the session and the grant (the governance page's Delete buttons), then retiring.
    sess_path = f"/api/runtime/sessions/mcp-servers/{body['session']}"
    assert admin.delete(sess_path, headers={"X-CSRF-Token": csrf}).status_code == 200
    refused = admin.post("/api/agent-tokens", json=body, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    grant_path = f"/api/runtime/grants/mcp-servers/g-{name}"
    assert admin.delete(grant_path, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert admin_api(governed_backend, "GET", grant_path).status_code == 404
    assert admin.delete(f"/api/runtime/servers/mcp-servers/{name}", headers={"X-CSRF-Token": csrf}).status_code == 200
