"""Admin audit/operations, teams and members, registry authz and image-publish activity."""

from __future__ import annotations

import base64
from typing import Any

from tests.helpers.api import ADMIN_KEY, Api, AppFactory

ADMIN = {"x-api-key": ADMIN_KEY}


async def test_audit_filters_and_errors(api: Api) -> None:
    await api.signup("aud@example.com")
    await api.client.post("/api/auth/login", json={"email": "aud@example.com", "password": "nope-nope"})
    rows = (await api.client.get("/api/admin/audit?user=aud@example.com", headers=ADMIN)).json()["audit_logs"]
    assert [r["action"] for r in rows] == ["login", "login", "signup"]  # newest first (signup, then its sign-in)
    assert rows[0]["status"] == "denied" and rows[0]["message"] == "invalid credentials (failures=1)"
    assert (await api.client.get("/api/admin/audit?limit=1", headers=ADMIN)).json()["audit_logs"].__len__() == 1
    r = await api.client.get("/api/admin/audit?since=2030-01-02&until=2030-01-01", headers=ADMIN)
    assert r.status_code == 200 and r.json()["audit_logs"] == []  # an empty window, each bound valid
    r = await api.client.get("/api/admin/audit?limit=ten", headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"] == "invalid_query_param"
    r = await api.client.get("/api/admin/audit?since=yesterday", headers=ADMIN)
    assert r.status_code == 400 and r.json()["message"] == "since must be RFC 3339 or YYYY-MM-DD"
    assert (await api.client.get("/api/admin/audit?since=2999-01-01", headers=ADMIN)).json()["audit_logs"] == []
    ops = (await api.client.get("/api/admin/operations?user=aud@example.com&limit=500", headers=ADMIN)).json()
    assert ops["filters"] == {"user": "aud@example.com", "limit": 200}
    assert [u["email"] for u in ops["users"]] == ["aud@example.com"]
    assert ops["images"] == [] and ops["deployments"] == []


async def test_image_publish_is_audited(api: Api) -> None:
    auth = await api.bearer("pub@example.com")
    r = await api.client.post("/api/user/activity/image-publish", json={"image_ref": ""}, headers=auth)
    assert r.status_code == 400 and r.json()["message"] == "image_ref is required"
    r = await api.client.post("/api/user/activity/image-publish", json={"image_ref": "x" * 513}, headers=auth)
    assert r.status_code == 400
    r = await api.client.post(
        "/api/user/activity/image-publish", json={"image_ref": "reg/mcp-team-a/s:1", "mode": "push"}, headers=auth
    )
    assert r.status_code == 202 and r.json() == {"ok": True, "image_ref": "reg/mcp-team-a/s:1"}
    images = (await api.client.get("/api/admin/operations", headers=ADMIN)).json()["images"]
    assert images[0]["image_ref"] == "reg/mcp-team-a/s:1" and images[0]["email"] == "pub@example.com"
    assert images[0]["source"] == "api:platform_jwt"


async def test_team_lifecycle_and_members(api: Api) -> None:
    r = await api.client.post("/api/runtime/teams", json={"slug": "Bad Slug!"}, headers=ADMIN)
    assert r.status_code == 400 and "slug" in r.json()["message"]
    team = (await api.client.post("/api/runtime/teams", json={"slug": "green", "name": "Green"}, headers=ADMIN)).json()
    assert team["team"]["namespace"] == "mcp-team-green"
    r = await api.client.post("/api/runtime/teams", json={"slug": "green"}, headers=ADMIN)
    assert r.status_code == 409
    user = (await api.signup("mem@example.com"))
    auth = {"Authorization": f"Bearer {user['access_token']}"}
    uid = user["user"]["id"]
    r = await api.client.put(f"/api/runtime/teams/green/members/{uid}", json={"role": "boss"}, headers=ADMIN)
    assert r.status_code == 400
    r = await api.client.put("/api/runtime/teams/green/members/not-a-user", json={"role": "member"}, headers=ADMIN)
    assert r.status_code == 404
    r = await api.client.put(f"/api/runtime/teams/green/members/{uid}", json={"role": "member"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["membership"]["team_namespace"] == "mcp-team-green"
    me = (await api.client.get("/api/auth/me", headers=auth)).json()["principal"]
    assert me["namespace"] == "mcp-team-green" and me["teams"][0]["role"] == "member"  # same token, new team
    assert [t["slug"] for t in (await api.client.get("/api/runtime/teams", headers=auth)).json()["teams"]] == ["green"]
    # A member may read but not manage.
    assert (await api.client.get("/api/runtime/teams/green/members", headers=auth)).status_code == 200
    r = await api.client.delete(f"/api/runtime/teams/green/members/{uid}", headers=auth)
    assert r.status_code == 403
    assert (await api.client.delete(f"/api/runtime/teams/green/members/{uid}", headers=ADMIN)).status_code == 200
    r = await api.client.delete(f"/api/runtime/teams/green/members/{uid}", headers=ADMIN)
    assert r.status_code == 404 and r.json()["message"] == "membership not found"
    assert (await api.client.get("/api/runtime/teams/nope", headers=ADMIN)).status_code == 404
    r = await api.client.post(
        "/api/runtime/teams/green/users", json={"email": "t@example.com", "password": "elevenchars"}, headers=ADMIN
    )
    assert r.status_code == 400 and "12" in r.json()["message"]


class FailingProvisioner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def provision(self, team: Any) -> None:
        self.calls.append(team.slug)
        raise RuntimeError("namespace quota exceeded")

    async def deprovision(self, team: Any) -> None:
        self.calls.append("de:" + team.slug)


async def test_team_rolled_back_when_provisioning_fails(make_api: AppFactory) -> None:
    prov = FailingProvisioner()
    api = await make_api(_backends={"provisioner": prov})
    r = await api.client.post("/api/runtime/teams", json={"slug": "doomed"}, headers=ADMIN)
    assert r.status_code == 502 and "namespace quota exceeded" in r.json()["message"]
    assert prov.calls == ["doomed"]
    assert await api.store.get_team("doomed") is None
    audit = await api.store.list_audit(limit=5)
    assert audit[0]["action"] == "team_create" and audit[0]["status"] == "error"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_registry_authz(api: Api) -> None:
    r = await api.client.get("/api/registry/authz")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic realm=")
    auth = await api.bearer("dev@example.com")
    me = (await api.client.get("/api/auth/me", headers=auth)).json()["principal"]
    team = (await api.client.post("/api/runtime/teams", json={"slug": "img"}, headers=ADMIN)).json()["team"]
    await api.store.add_member(team["id"], me["subject"], "member")
    cred = (await api.client.post("/api/user/registry-credentials", json={"name": "ci"}, headers=auth)).json()
    assert cred["password"].startswith("mcpr_") and cred["username"] == "dev@example.com"
    basic = _basic(cred["username"], cred["password"])

    async def check(method: str, uri: str, headers: dict[str, str] = basic) -> int:
        h = {**headers, "X-Forwarded-Method": method, "X-Forwarded-Uri": uri}
        return (await api.client.get("/api/registry/authz", headers=h)).status_code

    assert await check("GET", "/v2/") == 204
    assert await check("PUT", "/v2/mcp-team-img/server/manifests/1.0") == 204
    assert await check("GET", "/v2/mcp-servers/catalog/manifests/latest") == 204
    assert await check("PUT", "/v2/mcp-servers/catalog/manifests/latest") == 403
    assert await check("GET", "/v2/mcp-team-other/x/blobs/sha256:abc") == 403
    stolen = _basic("someone@else.com", cred["password"])
    assert await check("GET", "/v2/mcp-team-img/x/blobs/sha256:abc", stolen) == 401
    assert await check("GET", "/v2/mcp-team-img/x/blobs/sha256:abc", _basic("dev@example.com", "mcpr_wrong")) == 401
    # An API key is not a registry credential.
    key = (await api.client.post("/api/user/api-keys", json={"name": "k"}, headers=auth)).json()["api_key"]
    assert await check("GET", "/v2/", _basic("dev@example.com", key)) == 401
    cid = cred["credential"]["id"]
    assert (await api.client.post(f"/api/user/registry-credentials/{cid}/revoke", headers=auth)).status_code == 200
    assert await check("GET", "/v2/") == 401
    r = await api.client.delete("/api/user/registry-credentials/rk_nope", headers=auth)
    assert r.status_code == 404
