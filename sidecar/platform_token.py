"""Platform agent tokens (`auth.mode: platform`): verified offline against the API's published JWKS.

The API (`functions/api/agent_tokens.py`) signs short-lived ES256/EdDSA tokens bound to one human,
agent, team and agent session, for one server (`aud` = the server's canonical resource URL, `srv` =
its namespace/name). This module checks the signature, issuer, audience and lifetime; the caller
then checks that the token's session is an active session of the *current* policy on every
request, which is what makes revocation take effect with the next policy reload.

Costs on the hot path: one dict lookup per request once a token has been verified (the verdict is
cached per token string until the token expires, or until the key set changes). The JWKS is
fetched from `PLATFORM_JWKS_URL`, refreshed every `JWKS_TTL` seconds and on an unknown `kid` (key
rotation), never more than once per `UNKNOWN_KID_INTERVAL` seconds, so a flood of made-up kids
cannot turn the sidecar into a load generator against the API.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.types import Identity
from sidecar.errors import AuthFailure

# The only algorithms the platform signs with; `none`, HS* (the public key as an HMAC secret) and
# RSA never verify, whatever a token's header claims.
PLATFORM_ALGS = frozenset({"ES256", "EdDSA"})
JWKS_TTL = 300.0
UNKNOWN_KID_INTERVAL = 5.0
FAILED_FETCH_BACKOFF = 1.0
# Longest lifetime (exp - iat) accepted: the API mints at most an hour; a longer token was not ours.
MAX_LIFETIME = 3600
LEEWAY = 5
CACHE_MAX = 10_000
_READ_LIMIT = 256 * 1024
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "azp", "sid", "sns", "srv")


@dataclass(frozen=True, slots=True)
class PlatformClaims:
    """What a verified platform token asserts."""

    human: str
    agent: str
    team: str
    session: str
    session_namespace: str
    server: str  # "<namespace>/<name>"
    expires: float


class PlatformVerifier:
    """Verifies platform tokens for one sidecar: a cached JWKS and a per-token verdict cache."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        jwks_url: str,
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self.jwks_url = jwks_url
        self.issuer = issuer
        self._clock = clock
        self._keys: dict[str, Any] = {}  # kid -> PyJWK
        self._fetched_at = float("-inf")  # monotonic time of the last successful fetch
        self._attempted_at = float("-inf")  # monotonic time of the last attempt (success or not)
        self._last_error = ""
        self._lock = asyncio.Lock()
        self._cache: dict[tuple[str, str], PlatformClaims] = {}
        self.fetches = 0

    async def _fetch(self) -> None:
        import jwt  # preloaded with the first platform policy (sidecar.oauth.preload)

        self._attempted_at = time.monotonic()
        self.fetches += 1
        timeout = aiohttp.ClientTimeout(total=3)
        try:
            async with self._session.get(self.jwks_url, timeout=timeout, headers={"Accept": "application/json"}) as r:
                if r.status != 200:
                    raise AuthFailure("platform_jwks_unavailable", 503, f"JWKS answered {r.status}")
                raw = await r.content.read(_READ_LIMIT + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._last_error = str(exc) or exc.__class__.__name__
            raise AuthFailure("platform_jwks_unavailable", 503, f"JWKS fetch failed: {self._last_error}") from exc
        if len(raw) > _READ_LIMIT:
            raise AuthFailure("platform_jwks_unavailable", 503, "JWKS document too large")
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise AuthFailure("platform_jwks_unavailable", 503, "JWKS is not JSON") from exc
        keys: dict[str, Any] = {}
        for k in doc.get("keys", []) if isinstance(doc, dict) else []:
            if not isinstance(k, dict) or k.get("alg") not in PLATFORM_ALGS or not k.get("kid"):
                continue
            if any(private in k for private in ("d", "k")):
                continue  # a private or symmetric key has no business in a JWKS: never trust it
            try:
                jwk = jwt.PyJWK(k)
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
            keys[str(k["kid"])] = jwk
        if set(keys) != set(self._keys):
            self._cache.clear()  # a withdrawn key must stop verifying cached tokens too
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _key(self, kid: str) -> Any:
        now = time.monotonic()
        stale = now - self._fetched_at > JWKS_TTL
        if kid in self._keys and not stale:
            return self._keys[kid]
        async with self._lock:
            now = time.monotonic()
            stale = now - self._fetched_at > JWKS_TTL
            if kid in self._keys and not stale:
                return self._keys[kid]
            since = now - self._attempted_at
            if (stale and since >= FAILED_FETCH_BACKOFF) or (kid not in self._keys and since >= UNKNOWN_KID_INTERVAL):
                try:
                    await self._fetch()
                except AuthFailure:
                    if not self._keys:
                        raise
                    # A refresh failed but keys are known: keep verifying with them (the API may be
                    # restarting); an unknown kid is still refused below.
        key = self._keys.get(kid)
        if key is None:
            if not self._keys and self._last_error:
                raise AuthFailure("platform_jwks_unavailable", 503, f"JWKS fetch failed: {self._last_error}")
            raise AuthFailure("invalid_token", 401, f"no platform signing key {kid!r}")
        return key

    async def verify(self, token: str, *, audience: str) -> PlatformClaims:
        """The token's claims, or `AuthFailure` (`invalid_token` 401, `platform_jwks_unavailable` 503)."""
        now = self._clock()
        hit = self._cache.get((token, audience))
        if hit is not None:
            if now < hit.expires + LEEWAY:
                return hit
            del self._cache[(token, audience)]
            raise AuthFailure("invalid_token", 401, "token expired")
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthFailure("invalid_token", 401, f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in PLATFORM_ALGS:
            raise AuthFailure("invalid_token", 401, f"algorithm {alg!r} is not accepted for platform tokens")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthFailure("invalid_token", 401, "platform tokens must name their key (kid)")
        key = await self._key(kid)
        if key.algorithm_name != alg:
            raise AuthFailure("invalid_token", 401, "token algorithm does not match its key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=audience,
                options={"require": list(REQUIRED_CLAIMS)},
                leeway=LEEWAY,
            )
        except jwt.PyJWTError as exc:
            raise AuthFailure("invalid_token", 401, f"{exc.__class__.__name__}: {exc}") from exc
        if claims.get("aud") != audience:
            # One audience, exactly this server: a token listing several resources is not ours.
            raise AuthFailure("invalid_token", 401, "token audience must be exactly this server")
        text = {n: claims.get(n) for n in ("sub", "azp", "sid", "sns", "srv", "team_id")}
        if any(v is not None and not isinstance(v, str) for v in text.values()):
            raise AuthFailure("invalid_token", 401, "identity claims must be strings")
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int | float) or not isinstance(iat, int | float) or exp - iat > MAX_LIFETIME:
            raise AuthFailure("invalid_token", 401, "token lifetime exceeds the platform maximum")
        found = PlatformClaims(
            human=str(text["sub"] or "").strip(),
            agent=str(text["azp"] or "").strip(),
            team=str(text["team_id"] or "").strip(),
            session=str(text["sid"] or "").strip(),
            session_namespace=str(text["sns"] or "").strip(),
            server=str(text["srv"] or "").strip(),
            expires=float(exp),
        )
        if not (found.human and found.agent and found.session and found.session_namespace and found.server):
            raise AuthFailure("invalid_token", 401, "token lacks its human, agent, session or server")
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()  # crude but bounded; a re-verify costs ~0.1 ms
        self._cache[(token, audience)] = found
        return found


def session_identity(claims: PlatformClaims, policy: CompiledPolicy | None, now: float) -> Identity:
    """The caller's identity if the token's session is live in `policy` (the current snapshot), else 401.

    Checked on every request, never cached: revoking the session (or disabling its user, which
    revokes their sessions) reaches the sidecar with the next policy reload, and the very next call
    is refused even though the token itself is still unexpired.
    """
    if policy is None:
        raise AuthFailure("policy_unavailable", 503, "no policy loaded")
    srv = policy.doc.server
    if claims.server != f"{srv.namespace}/{srv.name}":
        raise AuthFailure("invalid_token", 401, "token was issued for another server")
    found = policy.session_binding(claims.session_namespace, claims.session, now)
    if found is None:
        raise AuthFailure("session_not_found", 401, "the token's agent session is not active on this server")
    binding, expired = found
    if binding.revoked:
        raise AuthFailure("session_revoked", 401, "the token's agent session was revoked")
    if expired:
        raise AuthFailure("session_expired", 401, "the token's agent session has expired")
    # Exactly the session's subject (the API mints from it): a token cannot widen it, e.g. add a team
    # that team-scoped grants would match.
    if (binding.human_id, binding.agent_id, binding.team_id) != (claims.human, claims.agent, claims.team):
        raise AuthFailure("invalid_token", 401, "the token's subject does not own its agent session")
    return Identity(
        human_id=claims.human,
        agent_id=claims.agent,
        team_id=claims.team,
        session_id=claims.session,
        session_namespace=claims.session_namespace,
    )
