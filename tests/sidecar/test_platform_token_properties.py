"""Property: the platform verifier accepts a token only if every claim is within the contract.

Claims are mutated at random (dropped, retyped, re-valued) and signed with the real key, or signed
with a random algorithm/key/kid; whatever is accepted must carry exactly this issuer, exactly this
audience, this server, a human/agent/session, and a lifetime within bounds. The JWKS is fetched
over real HTTP from the API's issuer code.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.api.agent_tokens import AgentTokenIssuer, generate_pem, load_key
from localstack.config import Ports
from sidecar.oauth import AuthFailure
from sidecar.platform_token import MAX_LIFETIME, PlatformVerifier

ISSUER = "https://sentinel.example.com/api"
AUD = "https://sentinel.example.com/server-a/mcp"
KEY = load_key("k1", generate_pem())
CLAIMS = ("iss", "aud", "sub", "azp", "sid", "sns", "srv", "team_id", "iat", "nbf", "exp")


class _Loop:
    """A JWKS server and a verifier living on one background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = Ports.free().api
        self.run(self._start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> None:
        issuer = AgentTokenIssuer(ISSUER, (KEY,))

        async def jwks(_r: web.Request) -> web.Response:
            return web.json_response(issuer.jwks())

        app = web.Application()
        app.router.add_get("/jwks", jwks)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.session = aiohttp.ClientSession()
        self.verifier = PlatformVerifier(self.session, jwks_url=f"http://127.0.0.1:{self.port}/jwks", issuer=ISSUER)

    async def _stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()

    def close(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def bg() -> Iterator[_Loop]:
    b = _Loop()
    try:
        yield b
    finally:
        b.close()


def _valid() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUD, "sub": "alice", "azp": "agent", "sid": "s1", "sns": "ns", "srv": "ns/srv",
            "team_id": "t", "iat": now, "nbf": now, "exp": now + 300}  # fmt: skip


_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.lists(st.text(max_size=8), max_size=3),
    st.sampled_from([ISSUER, AUD, AUD + "/", ISSUER + "/", "https://sentinel.example.com/server-b/mcp", ""]),
)
_mutations = st.dictionaries(st.sampled_from(CLAIMS), st.one_of(st.just("<drop>"), _values), max_size=3)
# Instants moved around now: lifetimes, expiry and not-before are where off-by-one bugs live.
_shifts = st.dictionaries(st.sampled_from(("iat", "nbf", "exp")), st.integers(min_value=-7200, max_value=7200),
                          max_size=3)
_signers = st.sampled_from(["good", "good", "good", "good-other-kid", "other-p256", "ed25519", "hs256", "none"])


def _sign(claims: dict[str, Any], signer: str) -> str:
    if signer == "good":
        return jwt.encode(claims, KEY.private, algorithm="ES256", headers={"kid": "k1"})
    if signer == "good-other-kid":
        return jwt.encode(claims, KEY.private, algorithm="ES256", headers={"kid": "k2"})
    if signer == "other-p256":
        return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "k1"})
    if signer == "ed25519":
        return jwt.encode(claims, ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "k1"})
    if signer == "hs256":
        return jwt.encode(claims, "k1-shared-secret-that-is-long-enough!", algorithm="HS256", headers={"kid": "k1"})
    return jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=_mutations, shifts=_shifts, signer=_signers)
def test_accepted_tokens_are_always_within_the_contract(
    bg: _Loop, mutations: dict[str, Any], shifts: dict[str, int], signer: str
) -> None:
    claims = _valid()
    for name, delta in shifts.items():
        claims[name] += delta
    for name, value in mutations.items():
        if value == "<drop>":
            claims.pop(name, None)
        else:
            claims[name] = value
    try:
        token = _sign(claims, signer)
    except (TypeError, ValueError, jwt.PyJWTError):
        return  # not even encodable: nothing to send
    try:
        got = bg.run(bg.verifier.verify(token, audience=AUD))
    except AuthFailure as fail:
        assert fail.status == 401 and fail.reason == "invalid_token", (fail.reason, fail.detail)
        return
    assert signer == "good"
    assert claims["iss"] == ISSUER and claims["aud"] == AUD
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] - claims["iat"] <= MAX_LIFETIME and claims["exp"] > time.time() - 10
    assert got.human == claims["sub"].strip() and got.human
    assert got.agent and got.session and got.session_namespace and got.server == claims["srv"].strip()
