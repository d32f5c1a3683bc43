"""Authorization matrix: every owned route × {anonymous, user, team owner, other team's user, admin, ingest key}.

Table-driven so other areas can append rows: each row is (method, path, body, {caller: status}).
Paths may use `{team}` (the owner's team slug), `{member}` (a member's user id) and `{key}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.conftest import ADMIN_KEY, INGEST_KEY, Api, AppFactory

CALLERS = ("anonymous", "user", "owner", "other", "admin", "ingest")
A, U, O, X, D, I = CALLERS  # noqa: E741 - short column names keep the table readable


@dataclass(frozen=True)
class Case:
    """One route and the exact status each caller must get."""

    method: str
    path: str
    body: dict[str, Any] | None
    expect: dict[str, int]


def every(status: int, **over: int) -> dict[str, int]:
    """Same status for all callers, with per-caller overrides."""
    return {c: over.get(c, status) for c in CALLERS}


AUTHED = {A: 401, I: 401}  # anonymous and ingest keys never authenticate

MATRIX: list[Case] = [
    Case("GET", "/health", None, every(200)),
    Case("GET", "/api/auth/me", None, every(200, **AUTHED)),
    Case("GET", "/api/users", None, every(403, **AUTHED, admin=200)),
    Case("POST", "/api/users", {"email": "m1@example.com", "password": "password123"}, every(403, **AUTHED, admin=201)),
    Case("GET", "/api/admin/audit", None, every(403, **AUTHED, admin=200)),
    Case("GET", "/api/admin/operations", None, every(403, **AUTHED, admin=200)),
    Case("GET", "/api/admin/namespaces", None, every(403, **AUTHED, admin=200)),
    # Service keys have no user, so self-service key routes answer 401 for the admin service key.
    Case("GET", "/api/user/api-keys", None, every(200, **AUTHED, admin=401)),
    Case("POST", "/api/user/api-keys", {"name": "k"}, every(200, **AUTHED, admin=401)),
    Case("GET", "/api/user/registry-credentials", None, every(200, **AUTHED, admin=401)),
    Case("POST", "/api/user/registry-credentials", {"name": "k"}, every(201, **AUTHED, admin=401)),
    Case("POST", "/api/user/activity/image-publish", {"image_ref": "r/x:1"}, every(202, **AUTHED)),
    Case("GET", "/api/runtime/teams", None, every(200, **AUTHED)),
    Case("POST", "/api/runtime/teams", {"slug": "made-here"}, every(403, **AUTHED, admin=201)),
    Case("GET", "/api/runtime/teams/{team}", None, every(403, **AUTHED, owner=200, admin=200)),
    Case("GET", "/api/runtime/teams/{team}/members", None, every(403, **AUTHED, owner=200, admin=200)),
    Case("PUT", "/api/runtime/teams/{team}/members/{member}", {"role": "member"},
         every(403, **AUTHED, owner=200, admin=200)),
    Case("POST", "/api/runtime/teams/{team}/users", {"email": "tu@example.com", "password": "long-password-1"},
         every(403, **AUTHED, owner=201, admin=201)),
    Case("GET", "/api/runtime/namespaces", None, every(200, **AUTHED)),
    Case("GET", "/api/runtime/namespaces/mcp-team-red", None, every(403, **AUTHED, owner=200, admin=200)),
    Case("DELETE", "/api/runtime/teams/{team}/members/{member}", None, every(403, **AUTHED, owner=200, admin=200)),
    Case("DELETE", "/api/runtime/teams/{team}", None, every(403, **AUTHED, admin=200)),
]


async def _setup(api: Api) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Create the callers: a plain user, the owner of team `red`, a member of team `blue`."""
    admin = {"x-api-key": ADMIN_KEY}
    headers: dict[str, dict[str, str]] = {A: {}, I: {"x-api-key": INGEST_KEY}, D: admin}
    headers[U] = await api.bearer("plain@example.com")
    owner = await api.signup("owner@example.com")
    headers[O] = {"Authorization": f"Bearer {owner['access_token']}"}
    other = await api.signup("other@example.com")
    headers[X] = {"Authorization": f"Bearer {other['access_token']}"}
    member = await api.signup("member@example.com")
    red = (await api.client.post("/api/runtime/teams", json={"slug": "red"}, headers=admin)).json()["team"]
    blue = (await api.client.post("/api/runtime/teams", json={"slug": "blue"}, headers=admin)).json()["team"]
    await api.store.add_member(red["id"], owner["user"]["id"], "owner")
    await api.store.add_member(blue["id"], other["user"]["id"], "owner")
    return headers, {"team": "red", "member": member["user"]["id"]}


@pytest.mark.parametrize("caller", CALLERS)
async def test_authorization_matrix(make_api: AppFactory, caller: str) -> None:
    api = await make_api()
    headers, names = await _setup(api)
    failures = []
    for case in MATRIX:
        path = case.path.format(**names)
        r = await api.client.request(case.method, path, json=case.body, headers=headers[caller])
        if r.status_code != case.expect[caller]:
            failures.append(f"{case.method} {path}: {r.status_code} != {case.expect[caller]} ({r.text[:120]})")
        elif r.status_code >= 400:
            assert set(r.json()) == {"error", "message"}, r.text
    assert not failures, "\n".join(failures)
