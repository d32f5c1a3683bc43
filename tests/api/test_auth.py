"""Authentication: service keys, user keys, platform JWTs, login lockout, error envelope."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from mcp_sentinel.identity.tokens import AUDIENCE, ISSUER
from tests.helpers.api import ADMIN_KEY, INGEST_KEY, JWT_SECRET, USER_SERVICE_KEY, Api, AppFactory


async def test_service_keys_roles_and_ingest_key_rejected(api: Api) -> None:
    me = await api.client.get("/api/auth/me", headers={"x-api-key": ADMIN_KEY})
    assert me.status_code == 200 and me.json()["principal"]["role"] == "admin"
    me = await api.client.get("/api/auth/me", headers={"x-api-key": USER_SERVICE_KEY})
    assert me.json()["principal"]["role"] == "user"
    assert (await api.client.get("/api/admin/audit", headers={"x-api-key": USER_SERVICE_KEY})).status_code == 403
    r = await api.client.get("/api/auth/me", headers={"x-api-key": INGEST_KEY})
    assert r.status_code == 401 and r.json() == {"error": "unauthorized", "message": "invalid API key"}
    r = await api.client.get("/api/auth/me")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


async def test_user_api_key_create_use_revoke(api: Api) -> None:
    auth = await api.bearer("keys@example.com")
    r = await api.client.post("/api/user/api-keys", json={"name": "laptop"}, headers=auth)
    assert r.status_code == 200
    body = r.json()
    raw = body["api_key"]
    assert raw == body["one_time_key"] and raw.startswith("mcpu_") and len(raw) == 5 + 43
    key_id = body["key"]["id"]
    me = await api.client.get("/api/auth/me", headers={"x-api-key": raw})
    assert me.status_code == 200 and me.json()["principal"]["email"] == "keys@example.com"
    listed = (await api.client.get("/api/user/api-keys", headers=auth)).json()["keys"]
    assert [k["id"] for k in listed] == [key_id] and "api_key" not in listed[0]
    r = await api.client.delete(f"/api/user/api-keys/{key_id}", headers=auth)
    assert r.status_code == 200 and r.json()["key"]["revoked"] is True
    assert (await api.client.get("/api/auth/me", headers={"x-api-key": raw})).status_code == 401
    # Idempotent revoke; unknown id → 404; empty name → 400; service key has no user → 401.
    assert (await api.client.post(f"/api/user/api-keys/{key_id}/revoke", headers=auth)).status_code == 200
    r = await api.client.delete("/api/user/api-keys/uk_nope", headers=auth)
    assert r.status_code == 404 and r.json() == {"error": "not_found", "message": "key not found"}
    r = await api.client.post("/api/user/api-keys", json={"name": "  "}, headers=auth)
    assert r.status_code == 400 and r.json()["message"] == "name is required"
    r = await api.client.get("/api/user/api-keys", headers={"x-api-key": ADMIN_KEY})
    assert r.status_code == 401
    actions = [row["action"] for row in await api.store.list_audit(limit=50)]
    assert "api_key_create" in actions and "api_key_revoke" in actions


async def test_other_users_key_cannot_be_revoked(api: Api) -> None:
    a = await api.bearer("a@example.com")
    b = await api.bearer("b@example.com")
    key_id = (await api.client.post("/api/user/api-keys", json={"name": "k"}, headers=a)).json()["key"]["id"]
    assert (await api.client.delete(f"/api/user/api-keys/{key_id}", headers=b)).status_code == 404


def _token(
    claims: dict[str, object], key: str | bytes = JWT_SECRET, kid: str | None = "default", alg: str = "HS256"
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _claims(sub: str, **over: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 60}
    base.update(over)
    return base


async def _status(api: Api, token: str) -> int:
    return (await api.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code


async def test_jwt_acceptance_rules(api: Api) -> None:
    sub = (await api.signup("jwt@example.com"))["user"]["id"]
    assert await _status(api, _token(_claims(sub))) == 200
    assert await _status(api, _token(_claims(sub, exp=int(time.time()) - 5))) == 401  # expired
    assert await _status(api, _token(_claims(sub), kid="other")) == 401  # unknown kid
    assert await _status(api, _token(_claims(sub), kid=None)) == 401  # no kid
    assert await _status(api, _token(_claims(sub), key=JWT_SECRET * 2, alg="HS512")) == 401  # wrong alg
    assert await _status(api, _token(_claims(sub, aud="someone-else"))) == 401
    assert await _status(api, _token(_claims(sub, iss="evil"))) == 401
    assert await _status(api, _token(_claims(sub), key=b"x" * 40)) == 401  # bad signature
    unsigned = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "default"}).encode()).rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(json.dumps(_claims(sub)).encode()).rstrip(b"=").decode()
        + "."
    )
    assert await _status(api, unsigned) == 401
    assert await _status(api, "not-a-jwt") == 401
    assert await _status(api, _token(_claims("00000000-0000-0000-0000-000000000000"))) == 401  # no such user


async def test_key_rotation(make_api: AppFactory) -> None:
    old_secret, new_secret = "old-secret-" + "o" * 30, "new-secret-" + "n" * 30
    before = await make_api(jwt_secret="", jwt_keys=f"k1={old_secret}")
    sub = (await before.signup("rot@example.com"))["user"]["id"]
    old_token = _token(_claims(sub), key=old_secret, kid="k1")
    after = await make_api(jwt_secret="", jwt_keys=f"k2={new_secret},k1={old_secret}")
    assert await _status(after, old_token) == 200  # old kid still verifies during rotation
    new_token = (await after.client.post(
        "/api/auth/login", json={"email": "rot@example.com", "password": "password123"}
    )).json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    retired = await make_api(jwt_secret="", jwt_keys=f"k2={new_secret}")
    assert await _status(retired, old_token) == 401
    assert await _status(retired, new_token) == 200


async def test_disabled_user_token_and_key_rejected_at_once(api: Api) -> None:
    body = await api.signup("gone@example.com")
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    raw = (await api.client.post("/api/user/api-keys", json={"name": "k"}, headers=auth)).json()["api_key"]
    admin = {"x-api-key": ADMIN_KEY}
    r = await api.client.patch(f"/api/users/{body['user']['id']}", json={"disabled": True}, headers=admin)
    assert r.status_code == 200 and r.json()["user"]["disabled"] is True
    assert (await api.client.get("/api/auth/me", headers=auth)).status_code == 401
    assert (await api.client.get("/api/auth/me", headers={"x-api-key": raw})).status_code == 401
    r = await api.client.post("/api/auth/login", json={"email": "gone@example.com", "password": "password123"})
    assert r.status_code == 401
    await api.client.patch(f"/api/users/{body['user']['id']}", json={"disabled": False}, headers=admin)
    assert (await api.client.get("/api/auth/me", headers=auth)).status_code == 200
    assert (await api.client.delete(f"/api/users/{body['user']['id']}", headers=admin)).status_code == 200
    assert (await api.client.get("/api/auth/me", headers=auth)).status_code == 401


async def test_an_invalid_api_key_is_refused_even_beside_a_valid_bearer_token(api: Api) -> None:
    # Fail closed (SECURITY.md): a wrong x-api-key is never silently skipped for another credential.
    body = await api.signup("both@example.com")
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await api.client.get("/api/auth/me", headers=bearer)).status_code == 200
    for wrong in ("mcpu_not-a-key", "", " "):
        r = await api.client.get("/api/auth/me", headers={**bearer, "x-api-key": wrong})
        assert r.status_code == 401 and r.json() == {"error": "unauthorized", "message": "invalid API key"}, wrong


async def test_role_change_applies_without_new_token(api: Api) -> None:
    body = await api.signup("promote@example.com")
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await api.client.get("/api/admin/audit", headers=auth)).status_code == 403
    import psycopg

    with psycopg.connect(api.app.state.ctx.settings.postgres_dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET role = 'admin' WHERE email = 'promote@example.com'")
    assert (await api.client.get("/api/admin/audit", headers=auth)).status_code == 200


async def _login(api: Api, email: str, password: str, **headers: str) -> int:
    r = await api.client.post("/api/auth/login", json={"email": email, "password": password}, headers=headers)
    return r.status_code


async def test_lockout_per_account_and_peer_not_bypassed_by_forwarded_for(make_api: AppFactory) -> None:
    attacker = await make_api(peer="203.0.113.7")
    await attacker.signup("victim@example.com", "right-password")
    for _ in range(3):
        assert await _login(attacker, "victim@example.com", "wrong-password") == 401
    # Locked now, even with the right password and a fresh X-Forwarded-For.
    assert await _login(attacker, "victim@example.com", "right-password", **{"X-Forwarded-For": "198.51.100.1"}) == 429
    r = await attacker.client.post("/api/auth/login", json={"email": "victim@example.com", "password": "x"})
    assert r.status_code == 429 and r.json()["error"] == "too_many_requests" and int(r.headers["Retry-After"]) >= 1
    # Another account from the same peer is not locked.
    await attacker.signup("bystander@example.com", "bystander-pw")
    assert await _login(attacker, "bystander@example.com", "bystander-pw") == 200
    # The same account from another peer (a different client of the same process) is not locked.
    other = await make_api(peer="198.51.100.20")
    other.app.state.ctx.lockout = attacker.app.state.ctx.lockout  # one process, one lockout table
    assert await _login(other, "victim@example.com", "right-password") == 200
    audit = await attacker.store.list_audit(limit=50)
    messages = [a.get("message") for a in audit if a["action"] == "login"]
    assert "rate_limited" in messages and "invalid credentials (failures=3)" in messages
    assert all(a["actor_ip"] in {"203.0.113.7", "198.51.100.20"} for a in audit if a["action"] == "login")


async def test_login_errors(api: Api) -> None:
    r = await api.client.post("/api/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
    assert r.status_code == 401 and r.json() == {"error": "unauthorized", "message": "invalid credentials"}
    r = await api.client.post("/api/auth/login", json={"email": "x@example.com"})
    assert r.status_code == 400 and r.json() == {"error": "invalid_request_body", "message": "password is required"}
    r = await api.client.post("/api/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request_body"
    r = await api.client.post("/api/auth/login", json={"email": "x@example.com", "password": "p" * 5000})
    assert r.status_code == 413
    assert r.json() == {"error": "request_too_large", "message": "request body exceeds 4096 bytes"}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"email": "new@example.com", "password": "short"}, 400, "password must be at least 8 characters"),
        ({"email": "no-at-sign", "password": "password123"}, 400, "email must look like name@domain"),
        ({"email": "a@[127.0.0.1]", "password": "password123"}, 400, "email domain must not be an IP address"),
        ({"email": "new@example.com", "password": "password123", "role": "root"}, 400, "role must be user or admin"),
        ({"email": "new@example.com", "password": "password123", "role": "admin"}, 403,
         "creating an admin requires an admin caller"),
    ],
)
async def test_signup_validation(api: Api, body: dict[str, str], status: int, message: str) -> None:
    r = await api.client.post("/api/auth/signup", json=body)
    assert (r.status_code, r.json()["message"]) == (status, message)


async def test_signup_answers_the_same_for_taken_and_free_emails(api: Api) -> None:
    # Issue 14: 409 for a taken email let anyone enumerate accounts.
    await api.signup("dup@example.com")
    taken = await api.client.post("/api/auth/signup", json={"email": "DUP@example.com", "password": "other-pass-1"})
    free = await api.client.post("/api/auth/signup", json={"email": "fresh@example.com", "password": "other-pass-1"})
    assert (taken.status_code, taken.json()) == (free.status_code, free.json()) and taken.status_code == 202
    assert "access_token" not in taken.json()
    # The taken account keeps its own password; the second signup changed nothing.
    assert await _login(api, "dup@example.com", "password123") == 200
    assert await _login(api, "dup@example.com", "other-pass-1") == 401
    rows = await api.store.list_audit(limit=10)
    assert [(r["status"], r.get("message")) for r in rows if r["action"] == "signup"][:2] == [
        ("success", None), ("denied", "email already registered")]
    # An admin caller may still ask for an admin account by signup.
    r = await api.client.post(
        "/api/auth/signup", json={"email": "boss@example.com", "password": "password123", "role": "admin"},
        headers={"x-api-key": ADMIN_KEY},
    )
    assert r.status_code == 202
    assert (await api.store.get_user_by_email("boss@example.com")).role == "admin"  # type: ignore[union-attr]


async def test_signup_is_off_unless_enabled_and_admins_create_or_invite(make_api: AppFactory) -> None:
    api = await make_api(signup_enabled=False)
    r = await api.client.post("/api/auth/signup", json={"email": "walk-in@example.com", "password": "password123"})
    assert r.status_code == 403 and "signup is disabled" in r.json()["message"]
    assert await api.store.get_user_by_email("walk-in@example.com") is None
    admin = {"x-api-key": ADMIN_KEY}
    r = await api.client.post("/api/users", json={"email": "made@example.com", "password": "password123"},
                              headers=admin)
    assert r.status_code == 201 and r.json()["invited"] is False
    assert await _login(api, "made@example.com", "password123") == 200
    r = await api.client.post("/api/users", json={"email": "Invited@example.com"}, headers=admin)
    assert r.status_code == 201 and r.json()["invited"] is True and r.json()["user"]["email"] == "invited@example.com"
    # An invitation has no password: nothing signs in to it until a verified OIDC identity claims it.
    assert await _login(api, "invited@example.com", "") == 401
    assert await _login(api, "invited@example.com", "password123") == 401
    r = await api.client.post("/api/users", json={"email": "invited@example.com"}, headers=admin)
    assert r.status_code == 409
    r = await api.client.post("/api/users", json={"email": "x@example.com"}, headers={"x-api-key": USER_SERVICE_KEY})
    assert r.status_code == 403


async def test_envelope_on_routing_errors_and_v1_alias(api: Api) -> None:
    r = await api.client.get("/api/nope")
    assert r.status_code == 404 and r.json() == {"error": "not_found", "message": "no such route"}
    r = await api.client.get("/api/auth/login")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed" and "POST" in r.headers["allow"]
    r = await api.client.get("/api/admin/audit?limit=abc", headers={"x-api-key": ADMIN_KEY})
    assert r.status_code == 400 and r.json() == {"error": "invalid_query_param", "message": "limit must be an integer"}
    assert (await api.client.get("/api/v1/auth/me", headers={"x-api-key": ADMIN_KEY})).status_code == 200
    spec = (await api.client.get("/api/openapi.json")).json()
    assert "/api/auth/login" in spec["paths"] and "/api/runtime/teams" in spec["paths"]


async def test_missing_backends_give_503(make_api: AppFactory) -> None:
    from dataclasses import replace

    from httpx import ASGITransport, AsyncClient

    from functions.api.app import create_app
    from tests.helpers.api import base_settings

    app = create_app(replace(base_settings(""), jwt_secret=""))
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/auth/login", json={"email": "a@example.com", "password": "password123"})
        assert r.status_code == 503 and r.json()["error"] == "service_unavailable"
        r = await c.get("/api/admin/audit", headers={"x-api-key": ADMIN_KEY})
        assert r.status_code == 503 and "POSTGRES_DSN" in r.json()["message"]
        assert (await c.get("/api/auth/me", headers={"x-api-key": ADMIN_KEY})).status_code == 200
        assert (await c.get("/api/auth/me", headers={"Authorization": "Bearer x.y.z"})).status_code == 401


def test_settings_reject_bad_config() -> None:
    from functions.api.settings import ApiSettings

    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        ApiSettings.from_env({"JWT_SECRET": "short"})
    with pytest.raises(ValueError, match="OIDC_ISSUER and OIDC_AUDIENCE"):
        ApiSettings.from_env({"OIDC_ISSUER": "https://idp.example"})
    with pytest.raises(ValueError, match="PORT must be an integer"):
        ApiSettings.from_env({"PORT": "eighty"})
