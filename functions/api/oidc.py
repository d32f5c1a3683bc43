"""OIDC ID-token verification: issuer discovery, JWKS cache, audience and issuer checks.

httpx and jwt (with cryptography, together about 100 ms of imports) are loaded when a verifier is
built — only when OIDC is configured — not with this module, which the API imports for its types.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    import jwt

ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
JWKS_TTL_SECONDS = 600.0
# An unknown kid triggers a refetch (key rotation), but not more often than this.
MIN_REFETCH_SECONDS = 30.0


class OidcError(Exception):
    """The ID token is not acceptable, or the provider could not be reached."""


@dataclass(frozen=True)
class OidcIdentity:
    """The verified claims we use."""

    issuer: str
    subject: str
    email: str
    email_verified: bool | None
    nonce: str | None = None
    expires_at: float = 0.0


class OidcVerifier:
    """Verifies ID tokens from one issuer for one audience."""

    def __init__(self, issuer: str, audience: str, jwks_url: str = "", http: httpx.AsyncClient | None = None) -> None:
        import httpx  # deferred: see module docstring
        import jwt  # noqa: F401 - loaded here so verifying a token never pays the import

        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._jwks_url = jwks_url
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def _discover(self) -> str:
        if not self._jwks_url:
            resp = await self._http.get(self.issuer + "/.well-known/openid-configuration")
            resp.raise_for_status()
            doc = resp.json()
            if doc.get("issuer", "").rstrip("/") != self.issuer:
                raise OidcError("discovery document names a different issuer")
            self._jwks_url = str(doc["jwks_uri"])
        return self._jwks_url

    async def _refresh(self) -> None:
        import httpx
        import jwt

        try:
            url = await self._discover()
            resp = await self._http.get(url)
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise OidcError(f"OIDC provider unreachable: {exc}") from exc
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in data.get("keys", []):
            try:
                key = jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                continue  # unsupported key types are skipped, not fatal
            keys[str(jwk.get("kid", ""))] = key
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def _key(self, kid: str) -> jwt.PyJWK:
        age = time.monotonic() - self._fetched_at
        if not self._keys or age > JWKS_TTL_SECONDS or (kid not in self._keys and age > MIN_REFETCH_SECONDS):
            await self._refresh()
        key = self._keys.get(kid)
        if key is None and kid == "" and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            raise OidcError(f"unknown signing key {kid!r}")
        return key

    async def verify(self, token: str) -> OidcIdentity:
        """Verified identity, or OidcError."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise OidcError(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise OidcError(f"algorithm {alg!r} not accepted")
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise OidcError(str(exc)) from exc
        verified = claims.get("email_verified")
        if isinstance(verified, str):
            verified = json.loads(verified.lower()) if verified.lower() in ("true", "false") else None
        return OidcIdentity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=str(claims.get("email", "")).strip().lower(),
            email_verified=verified if isinstance(verified, bool) else None,
            nonce=str(claims["nonce"]) if isinstance(claims.get("nonce"), str) else None,
            expires_at=float(claims["exp"]),
        )

    def looks_like_oidc(self, token: str) -> bool:
        """True when the token's header uses an asymmetric algorithm (platform tokens are HS256)."""
        import jwt

        try:
            return jwt.get_unverified_header(token).get("alg") in ASYMMETRIC_ALGORITHMS
        except jwt.PyJWTError:
            return False

    def is_id_token(self, token: str) -> bool:
        """True when the (unverified) token names this provider as its issuer: an ID token."""
        import jwt

        try:
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return False
        return isinstance(iss, str) and iss.rstrip("/") == self.issuer


class NonceLedger:
    """Nonces already exchanged for a platform token, kept until their ID token expires (per replica).

    The nonce binds an ID token to the browser that started the sign-in (the UI keeps it in a
    short-lived cookie); remembering spent ones makes a captured (token, nonce) pair single-use.
    """

    def __init__(self, max_entries: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self._spent: dict[str, float] = {}
        self._max = max_entries
        self._clock = clock

    def spend(self, nonce: str, expires_at: float) -> bool:
        """Record a nonce; False when it was already spent (a replay)."""
        now = self._clock()
        if len(self._spent) >= self._max:
            self._spent = {n: exp for n, exp in self._spent.items() if exp > now}
            while len(self._spent) >= self._max:  # still full of live nonces: drop the oldest
                self._spent.pop(next(iter(self._spent)))
        key = hashlib.sha256(nonce.encode()).hexdigest()
        if self._spent.get(key, 0.0) > now:
            return False
        self._spent[key] = max(expires_at, now + 60.0)
        return True
