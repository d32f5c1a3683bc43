"""Identity you can trust (issue 14, "Account takeover"; "OIDC ... no nonce ... ID tokens as bearers").

Against a real Postgres and a real local OIDC issuer (discovery and JWKS over HTTP).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.fixtures.oidc import Issuer
from tests.helpers.api import ADMIN_KEY, Api, AppFactory

BOSS = "boss@corp.example"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    idp = Issuer()
    yield idp
    idp.close()


async def _oidc_api(make_api: AppFactory, issuer: Issuer, **overrides: Any) -> Api:
    return await make_api(oidc_issuer=issuer.url, oidc_audience="sentinel", **overrides)


def _token(issuer: Issuer, sub: str, email: str, verified: bool | None = True, nonce: str = "") -> tuple[str, str]:
    nonce = nonce or uuid.uuid4().hex
    claims: dict[str, Any] = {"sub": sub, "email": email, "nonce": nonce}
    if verified is not None:
        claims["email_verified"] = verified
    return issuer.token(**claims), nonce


async def _oidc(api: Api, token: tuple[str, str], **headers: str) -> httpx.Response:
    return await api.client.post("/api/auth/oidc", json={"id_token": token[0], "nonce": token[1]}, headers=headers)


async def _link(api: Api, token: tuple[str, str], auth: dict[str, str]) -> httpx.Response:
    return await api.client.post("/api/auth/oidc/link", json={"id_token": token[0], "nonce": token[1]}, headers=auth)


def _identities(api: Api, email: str) -> list[str]:
    with psycopg.connect(api.app.state.ctx.settings.postgres_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.provider FROM auth_identities a JOIN users u ON u.id = a.user_id WHERE u.email = %s "
            "ORDER BY a.provider", (email,)
        ).fetchall()
    return [r[0] for r in rows]


async def test_a_signup_squatter_cannot_take_over_the_oidc_owner(make_api: AppFactory, issuer: Issuer) -> None:
    # The finding: sign up as boss@ before the boss first signs in with OIDC, and own the account
    # (linked silently, and made admin through ADMIN_USERS).
    api = await _oidc_api(make_api, issuer, admin_users=frozenset({BOSS}))
    await api.signup(BOSS, "attacker-password")
    r = await _oidc(api, _token(issuer, "boss-sub", BOSS))
    assert r.status_code == 409 and r.json()["error"] == "link_required", r.text
    assert _identities(api, BOSS) == ["password"]  # nothing was linked
    squatter = await api.client.post("/api/auth/login", json={"email": BOSS, "password": "attacker-password"})
    assert squatter.json()["user"]["role"] == "user"  # and no admin rights came with the email
    audit = [a for a in await api.store.list_audit(limit=10) if a["action"] == "oidc_login"]
    assert [(a["status"], a.get("message")) for a in audit] == [("denied", "link_required")]


async def test_an_unverified_email_never_links_claims_or_creates(make_api: AppFactory, issuer: Issuer) -> None:
    api = await _oidc_api(make_api, issuer, admin_users=frozenset({"root@corp.example"}))
    await api.signup("alice@corp.example")
    invite = await api.client.post("/api/users", json={"email": "carol@corp.example"}, headers={"x-api-key": ADMIN_KEY})
    assert invite.status_code == 201
    for email in ("alice@corp.example", "carol@corp.example", "root@corp.example", "new@corp.example"):
        for verified in (False, None):
            r = await _oidc(api, _token(issuer, f"sub-{email}", email, verified=verified))
            assert r.status_code == 403, (email, verified, r.text)
    assert _identities(api, "alice@corp.example") == ["password"]
    assert _identities(api, "carol@corp.example") == []
    assert await api.store.get_user_by_email("root@corp.example") is None
    assert await api.store.get_user_by_email("new@corp.example") is None


async def test_signed_in_linking_is_the_only_way_to_join_an_existing_account(
    make_api: AppFactory, issuer: Issuer
) -> None:
    api = await _oidc_api(make_api, issuer)
    alice = await api.bearer("alice@corp.example")
    # Without signing in, the matching verified identity is not linked.
    assert (await _oidc(api, _token(issuer, "alice-sub", "alice@corp.example"))).status_code == 409
    # The owner proves both sides: signed in to the account, and an ID token for its verified email.
    unverified = _token(issuer, "alice-sub", "alice@corp.example", verified=False)
    assert (await _link(api, unverified, alice)).status_code == 403
    assert (await _link(api, _token(issuer, "alice-sub", "mallory@corp.example"), alice)).status_code == 403
    assert (await _link(api, _token(issuer, "alice-sub", "alice@corp.example"), {})).status_code == 401
    r = await _link(api, _token(issuer, "alice-sub", "alice@corp.example"), alice)
    assert r.status_code == 200 and r.json()["linked"] is True
    assert _identities(api, "alice@corp.example") == [f"oidc:{issuer.url}", "password"]
    r = await _oidc(api, _token(issuer, "alice-sub", "alice@corp.example"))
    assert r.status_code == 200 and r.json()["user"]["email"] == "alice@corp.example"
    # A user API key is not a sign-in, and an identity linked to alice cannot be linked to bob.
    key = await api.client.post("/api/user/api-keys", json={"name": "k"}, headers=alice)
    assert key.status_code in (200, 201), key.text
    by_key = {"x-api-key": key.json()["api_key"]}
    assert (await _link(api, _token(issuer, "alice-sub-2", "alice@corp.example"), by_key)).status_code == 403
    bob = await api.bearer("bob@corp.example")
    assert (await _link(api, _token(issuer, "alice-sub", "bob@corp.example"), bob)).status_code == 409
    big = await api.client.post("/api/auth/oidc/link", content=b"x" * 9000,
                                headers={**alice, "content-type": "application/json"})
    assert big.status_code == 413


async def test_an_invitation_is_claimed_by_the_first_verified_identity(make_api: AppFactory, issuer: Issuer) -> None:
    api = await _oidc_api(make_api, issuer, signup_enabled=False)
    invite = await api.client.post(
        "/api/users", json={"email": "Carol@corp.example"}, headers={"x-api-key": ADMIN_KEY}
    )
    r = await _oidc(api, _token(issuer, "carol-sub", "carol@corp.example"))
    assert r.status_code == 200 and r.json()["user"]["id"] == invite.json()["user"]["id"]
    # Claimed: another identity with the same email now needs signed-in linking.
    assert (await _oidc(api, _token(issuer, "carol-other", "carol@corp.example"))).status_code == 409


async def test_new_oidc_accounts_need_signup_or_admin_users(make_api: AppFactory, issuer: Issuer) -> None:
    api = await _oidc_api(make_api, issuer, signup_enabled=False, admin_users=frozenset({BOSS}))
    r = await _oidc(api, _token(issuer, "walk-in", "walk-in@corp.example"))
    assert r.status_code == 403 and "invitation" in r.json()["message"]
    assert await api.store.get_user_by_email("walk-in@corp.example") is None
    r = await _oidc(api, _token(issuer, "boss-sub", BOSS))
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin"
    open_api = await _oidc_api(make_api, issuer, signup_enabled=True)
    r = await _oidc(open_api, _token(issuer, "walk-in", "walk-in@corp.example"))
    assert r.status_code == 200 and r.json()["user"]["role"] == "user"


async def test_the_nonce_is_required_checked_and_single_use(make_api: AppFactory, issuer: Issuer) -> None:
    api = await _oidc_api(make_api, issuer, signup_enabled=True)
    no_nonce = issuer.token(sub="n-sub", email="n@corp.example", email_verified=True)
    for nonce in ("", "anything"):
        r = await api.client.post("/api/auth/oidc", json={"id_token": no_nonce, "nonce": nonce})
        assert r.status_code == 401, nonce
    token = _token(issuer, "n-sub", "n@corp.example")
    assert (await _oidc(api, (token[0], "another-sign-in"))).status_code == 401
    assert (await _oidc(api, (token[0], ""))).status_code == 401
    assert (await _oidc(api, token)).status_code == 200
    r = await _oidc(api, token)  # the same token and nonce again: a replay
    assert r.status_code == 401 and r.json()["message"] == "invalid ID token"


async def test_id_tokens_are_not_api_credentials(make_api: AppFactory, issuer: Issuer) -> None:
    api = await _oidc_api(make_api, issuer, signup_enabled=True)
    token = _token(issuer, "bearer-sub", "bearer@corp.example")
    assert (await _oidc(api, token)).status_code == 200  # the user exists and signs in fine
    for path in ("/api/auth/me", "/api/user/api-keys", "/api/runtime/teams"):
        r = await api.client.get(path, headers={"Authorization": f"Bearer {token[0]}"})
        assert r.status_code == 401 and "not API credentials" in r.json()["message"], (path, r.text)


async def test_login_answers_the_same_for_taken_and_free_emails(api: Api) -> None:
    await api.signup("taken@corp.example")
    taken = await api.client.post("/api/auth/login", json={"email": "taken@corp.example", "password": "wrong-pass"})
    free = await api.client.post("/api/auth/login", json={"email": "free@corp.example", "password": "wrong-pass"})
    assert (taken.status_code, taken.json()) == (free.status_code, free.json()) == (
        401, {"error": "unauthorized", "message": "invalid credentials"})


async def test_a_deleted_accounts_email_is_not_recreated_by_oidc(make_api: AppFactory, issuer: Issuer) -> None:
    api = await _oidc_api(make_api, issuer, signup_enabled=True)
    body = await api.signup("gone@corp.example")
    r = await api.client.delete(f"/api/users/{body['user']['id']}", headers={"x-api-key": ADMIN_KEY})
    assert r.status_code == 200
    r = await _oidc(api, _token(issuer, "gone-sub", "gone@corp.example"))
    assert r.status_code == 409 and r.json()["error"] == "conflict" and "deleted" in r.json()["message"]


async def test_no_claim_spelling_reaches_an_existing_account_without_signing_in(
    make_api: AppFactory, issuer: Issuer
) -> None:
    # Every spelling of email_verified and of the address, with self-service and ADMIN_USERS on:
    # an existing password account is never entered, linked or promoted by an OIDC sign-in alone.
    api = await _oidc_api(make_api, issuer, signup_enabled=True, admin_users=frozenset({"alice@corp.example"}))
    alice = (await api.signup("alice@corp.example"))["user"]
    spellings = ["alice@corp.example", "ALICE@corp.example", " Alice@Corp.Example ", "alice@CORP.EXAMPLE"]
    verified_values: list[Any] = [True, False, None, "true", "TRUE", "false", "1", 1, "yes", [], {}]
    for i, (email, verified) in enumerate((e, v) for e in spellings for v in verified_values):
        nonce = f"spelling-{i}"
        claims: dict[str, Any] = {"sub": f"mallory-{i}", "email": email, "nonce": nonce}
        if verified is not None:
            claims["email_verified"] = verified
        r = await api.client.post("/api/auth/oidc", json={"id_token": issuer.token(**claims), "nonce": nonce})
        assert r.status_code in (403, 409), (email, verified, r.text)
        assert "access_token" not in r.text
    assert _identities(api, "alice@corp.example") == ["password"]
    assert (await api.store.get_user(alice["id"])).role == "user"  # type: ignore[union-attr]
