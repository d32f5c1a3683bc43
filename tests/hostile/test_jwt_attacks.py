"""JWT attacks against the sidecar's OAuth mode (real issuer + JWKS) and the API's platform tokens.

Every forged token must get 401, never a 5xx and never an allow; the upstream must see nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from functions.api.app import create_app
from functions.api.settings import ApiSettings
from mcp_sentinel.identity.passwords import HashParams
from tests.helpers.api import serve
from tests.helpers.security_rig import AUD, Rig

JWT_SECRET = "hostile-test-jwt-secret-that-is-long-enough-0123456789"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A hand-assembled JWT (libraries refuse to build some of these, which is the point)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()) if secret is not None else ""
    return f"{signing_input}.{sig}"


def _tamper(token: str, **over: Any) -> str:
    """Replace claims in a validly signed token while keeping its original signature."""
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(over)
    return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"


def _sidecar_attacks(rig: Rig) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": rig.issuer, "aud": AUD, "sub": "alice", "azp": "workspace-agent", "sid": "sess-alice-a",
              "exp": now + 300}
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "alg_none": _forge({"alg": "none", "typ": "JWT", "kid": "k1"}, claims, None),
        "alg_none_capitalised": _forge({"alg": "None", "kid": "k1"}, claims, None),
        "hs256_with_rsa_public_key": _forge({"alg": "HS256", "kid": "k1"}, claims, rig.public_pem),
        "expired": rig.token(exp=now - 3600),
        "no_exp": rig.token(exp=None),
        "not_yet_valid": rig.token(nbf=now + 3600),
        "wrong_audience": rig.token(aud="https://attacker.example"),
        "wrong_issuer": rig.token(iss="http://127.0.0.1:1/evil"),
        "unknown_kid": rig.token(kid="k2"),
        "kid_path_traversal": rig.token(kid="../../../../etc/passwd"),
        "signed_by_attacker_key": rig.token(key=other),
        "tampered_payload": _tamper(rig.token(sub="bob"), sub="alice"),
        "garbage": "not.a.jwt",
        "empty_segments": "..",
        "huge": "a" * 8000,  # under the 16 KiB header cap (above it aiohttp answers 400)
    }


def test_forged_tokens_are_401_at_the_sidecar(rig: Rig) -> None:
    before = len(rig.tool_calls_seen())
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search"}})
    good = httpx2.post(rig.oauth_url, content=body, headers={"Content-Type": "application/json",
                                                                 "Authorization": f"Bearer {rig.token()}"}, timeout=30)
    assert good.status_code == 200, good.text
    for name, tok in _sidecar_attacks(rig).items():
        r = httpx2.post(rig.oauth_url, content=body, timeout=30,
                        headers={"Content-Type": "application/json", "Authorization": f"Bearer {tok}",
                                 "X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "workspace-agent"})
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.json()["error"]["data"]["reason"] == "invalid_token", (name, r.text)
    assert len(rig.tool_calls_seen()) == before + 1  # only the good call got through


# -- the API's platform tokens -------------------------------------------------------------------------------


@pytest.fixture
async def api(pg_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = ApiSettings(
        api_keys=frozenset({"hostile-user-key"}),
        admin_api_keys=frozenset({"hostile-admin-key"}),
        jwt_secret=JWT_SECRET,
        postgres_dsn=pg_dsn,
        hash_params=HashParams(time_cost=1, memory_cost_kib=1024, parallelism=1),
        db_startup_timeout=10.0,
    )
    app = create_app(settings)
    async with serve(app, "127.0.0.1") as client:
        yield client


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 forgery uses a short key
async def test_forged_tokens_are_401_at_the_api(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/users", json={"email": "victim@example.com", "password": "password123"},
                       headers={"x-api-key": "hostile-admin-key"})
    assert r.status_code == 201, r.text
    r = await api.post("/api/auth/login", json={"email": "victim@example.com", "password": "password123"})
    assert r.status_code == 200, r.text
    good = r.json()["access_token"]
    me = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {good}"})
    assert me.status_code == 200, me.text
    claims = jwt.decode(good, options={"verify_signature": False})
    kid = jwt.get_unverified_header(good)["kid"]
    now = int(time.time())
    secret = JWT_SECRET.encode()
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacks = {
        "alg_none": _forge({"alg": "none", "kid": kid}, claims, None),
        "rs256_attacker_key": jwt.encode(claims, attacker, algorithm="RS256", headers={"kid": kid}),
        "hs256_wrong_secret": jwt.encode(claims, "x" * 48, algorithm="HS256", headers={"kid": kid}),
        "hs512_right_secret": jwt.encode(claims, secret, algorithm="HS512", headers={"kid": kid}),
        "expired": jwt.encode({**claims, "exp": now - 3600}, secret, algorithm="HS256", headers={"kid": kid}),
        "wrong_audience": jwt.encode({**claims, "aud": "someone-else"}, secret, algorithm="HS256",
                                     headers={"kid": kid}),
        "wrong_issuer": jwt.encode({**claims, "iss": "evil"}, secret, algorithm="HS256", headers={"kid": kid}),
        "unknown_kid": jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "nope"}),
        "no_kid": jwt.encode(claims, secret, algorithm="HS256"),
        "tampered_role": _tamper(good, role="admin"),
        "tampered_subject": _tamper(good, sub="00000000-0000-0000-0000-000000000000"),
        "sql_in_kid": jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "' OR 1=1 --"}),
    }
    for name, tok in attacks.items():
        r = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 401, (name, r.status_code, r.text)
    # Tampering with the role never reaches an admin route either.
    r = await api.get("/api/admin/audit", headers={"Authorization": f"Bearer {_tamper(good, role='admin')}"})
    assert r.status_code == 401
