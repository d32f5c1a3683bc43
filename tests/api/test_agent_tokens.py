"""Platform agent tokens end to end: published servers default to `platform`, `POST /api/agent-tokens`
mints only for the caller's own live session, the JWKS verifies them, and a real sidecar reading
the API-rendered policy refuses the token within 2 s of revoking the session or disabling the user.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx2
import jwt
import pytest

from functions.api.agent_tokens import generate_pem
from tests.helpers.agent_tokens import ADMIN, ISSUER, PUBLIC, Env, mint, platform_gateway, session_for
from tests.helpers.api import USER_SERVICE_KEY, AppFactory


async def test_publish_defaults_to_platform_with_the_servers_own_url(env: Env) -> None:
    doc = env.policy()
    assert doc["auth"]["mode"] == "platform"
    assert doc["auth"]["resource"] == f"{PUBLIC}/srv/mcp"  # not the /victim/mcp the publisher asked for
    assert env.policy("hdr")["auth"]["mode"] == "header" and "resource" not in env.policy("hdr")["auth"]


async def test_mint_rules_and_claims(env: Env) -> None:
    c = env.api.client
    session = await session_for(env)
    r = await mint(env, session, env.member)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["token_type"] == "Bearer" and out["resource"] == f"{PUBLIC}/srv/mcp"
    assert 0 < out["expires_in"] <= 600
    jwks = (await c.get("/api/.well-known/jwks.json")).json()
    assert [k["kid"] for k in jwks["keys"]] == ["k-old", "k-new"]  # both published
    assert all("d" not in k for k in jwks["keys"])  # never a private member
    header = jwt.get_unverified_header(out["access_token"])
    assert header["kid"] == "k-new" and header["alg"] == "ES256"  # the last key signs
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == "k-new"))
    claims = jwt.decode(out["access_token"], key.key, algorithms=["ES256"], audience=f"{PUBLIC}/srv/mcp",
                        issuer=ISSUER)  # fmt: skip
    assert claims["sub"] == env.member_id and claims["azp"] == "bot" and claims["sid"] == session
    assert claims["sns"] == env.ns and claims["srv"] == f"{env.ns}/srv" and claims["team_id"]
    meta = (await c.get("/api/.well-known/agent-token-issuer")).json()
    assert meta["issuer"] == ISSUER and meta["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"

    # Only for yourself: a team owner, an admin key, a service key, nobody: no token for this session.
    assert (await mint(env, session, env.other)).status_code == 404
    assert (await mint(env, session, ADMIN)).status_code == 401
    assert (await mint(env, session, {"x-api-key": USER_SERVICE_KEY})).status_code == 401
    assert (await mint(env, session, {})).status_code == 401
    assert (await mint(env, "ghost", env.member)).status_code == 404
    r = await c.post("/api/agent-tokens", json={"namespace": "../x", "session": session}, headers=env.member)
    assert r.status_code == 400
    # A header-mode server takes no platform tokens.
    hdr = await session_for(env, server="hdr")
    r = await mint(env, hdr, env.member)
    assert r.status_code == 409 and "platform" in r.json()["message"]
    # Revoked: no more tokens.
    await c.patch(f"/api/runtime/sessions/{env.ns}/{session}", json={"revoked": True}, headers=ADMIN)
    r = await mint(env, session, env.member)
    assert r.status_code == 403 and r.json()["error"] == "session_revoked"


async def test_not_configured_is_503(make_api: AppFactory) -> None:
    api = await make_api()
    assert (await api.client.get("/api/.well-known/jwks.json")).status_code == 503


def test_bad_key_settings_refuse_start(tmp_path: Path) -> None:
    from functions.api.settings import ApiSettings

    rsa_pem = tmp_path / "rsa.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_pem.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    good = tmp_path / "ok.pem"
    good.write_bytes(generate_pem())
    for env, msg in (
        ({"AGENT_TOKEN_KEYS": f"k={good}"}, "set together"),
        ({"AGENT_TOKEN_KEYS": f"k={rsa_pem}", "AGENT_TOKEN_ISSUER": ISSUER}, "P-256 or Ed25519"),
        ({"AGENT_TOKEN_KEYS": f"k={tmp_path / 'missing.pem'}", "AGENT_TOKEN_ISSUER": ISSUER}, "cannot read"),
        ({"AGENT_TOKEN_KEYS": f"k={good},k={good}", "AGENT_TOKEN_ISSUER": ISSUER}, "twice"),
        ({"AGENT_TOKEN_KEYS": str(good), "AGENT_TOKEN_ISSUER": ISSUER}, "kid="),
        ({"AGENT_TOKEN_KEYS": f"k={good}", "AGENT_TOKEN_ISSUER": ISSUER, "AGENT_TOKEN_TTL_SECONDS": "86400"}, "TTL"),
        ({"MCP_PUBLIC_BASE_URL": "sentinel.example.com"}, "MCP_PUBLIC_BASE_URL"),
    ):
        with pytest.raises(ValueError, match=msg):
            ApiSettings.from_env(env)


async def _until_refused(url: str, token: str, limit: float = 5.0) -> tuple[float, httpx2.Response]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "search", "arguments": {}}})  # fmt: skip
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    t0 = time.monotonic()
    async with httpx2.AsyncClient(timeout=10) as c:
        while True:
            r = await c.post(url, content=body, headers=headers)
            if r.status_code != 200 or time.monotonic() - t0 > limit:
                return time.monotonic() - t0, r
            await asyncio.sleep(0.02)


@pytest.mark.timeout(180)
async def test_real_sidecar_refuses_within_two_seconds_of_revoking_the_session_or_the_user(
    env: Env, tmp_path: Path
) -> None:
    c = env.api.client
    first, second = await session_for(env, "bot"), await session_for(env, "bot-2")
    tok1 = (await mint(env, first, env.member)).json()["access_token"]
    tok2 = (await mint(env, second, env.member)).json()["access_token"]
    async with platform_gateway(env, tmp_path / "sidecar.log") as url:
        for tok in (tok1, tok2):
            _took, ok = await _until_refused(url, tok, limit=0)
            assert ok.status_code == 200, ok.text
        # 1. Revoke the session through the API: the next reload refuses the still-unexpired token.
        t0 = time.monotonic()
        r = await c.patch(f"/api/runtime/sessions/{env.ns}/{first}", json={"revoked": True}, headers=ADMIN)
        assert r.status_code == 200, r.text
        _took, refused = await _until_refused(url, tok1)
        took = time.monotonic() - t0
        assert refused.status_code == 401 and refused.json()["error"]["data"]["reason"] == "session_revoked"
        assert took < 2.0, took
        print(f"session revoke -> refused in {took * 1000:.0f} ms")
        # 2. Disable the user: their other session is revoked with them.
        t0 = time.monotonic()
        r = await c.patch(f"/api/users/{env.member_id}", json={"disabled": True}, headers=ADMIN)
        assert r.status_code == 200, r.text
        assert f"{env.ns}/{second}" in r.json()["revoked_sessions"]
        _took, refused = await _until_refused(url, tok2)
        took = time.monotonic() - t0
        assert refused.status_code == 401 and refused.json()["error"]["data"]["reason"] == "session_revoked"
        assert took < 2.0, took
        print(f"user disable -> refused in {took * 1000:.0f} ms")
