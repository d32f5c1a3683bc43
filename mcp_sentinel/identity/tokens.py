"""Platform access tokens: HS256 JWTs with a `kid` header so signing keys can rotate.

The algorithm is pinned (HS256 only; `none` and asymmetric algorithms are refused) and every
token must name a key id present in the verifier's key ring. Only claims needed to *find* the
user are trusted; role, teams and disabled state are re-read from the store on every request.

`jwt` (with cryptography, about 50 ms of imports) is loaded by the first token issued or
verified, not by importing this module or building a `TokenIssuer`: a cold-started API answers
its probes and API-key callers without it, and warms it in the background once serving
(`functions.api.app`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ALGORITHM = "HS256"
ISSUER = "mcp-sentinel"
AUDIENCE = "mcp-sentinel-api"
DEFAULT_TTL_SECONDS = 900
MIN_SECRET_BYTES = 32


class TokenError(Exception):
    """The token is not acceptable; the message says why (safe to log, not to return verbatim)."""


@dataclass(frozen=True)
class KeyRing:
    """Signing key first, then older keys still accepted for verification."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a JWT key ring needs at least one key")
        for kid, secret in self.keys:
            if not kid:
                raise ValueError("JWT key ids must be non-empty")
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"JWT key {kid!r} is shorter than {MIN_SECRET_BYTES} bytes")

    @classmethod
    def parse(cls, jwt_keys: str, jwt_secret: str) -> KeyRing:
        """From `JWT_KEYS` (`kid=secret,kid=secret`, first signs) or else `JWT_SECRET` (kid `default`)."""
        entries: list[tuple[str, bytes]] = []
        for item in (p.strip() for p in jwt_keys.split(",")):
            if not item:
                continue
            kid, sep, secret = item.partition("=")
            if not sep:
                raise ValueError("JWT_KEYS entries must look like kid=secret")
            entries.append((kid.strip(), secret.strip().encode()))
        if not entries and jwt_secret:
            entries.append(("default", jwt_secret.encode()))
        return cls(tuple(entries))

    @property
    def signing(self) -> tuple[str, bytes]:
        """The (kid, secret) new tokens are signed with."""
        return self.keys[0]

    def get(self, kid: str) -> bytes | None:
        """The secret for a key id, if the ring knows it."""
        return dict(self.keys).get(kid)


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says."""

    subject: str
    email: str
    role: str
    expires_at: int
    token_id: str


class TokenIssuer:
    """Issues and verifies platform access tokens."""

    def __init__(self, ring: KeyRing, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.ring = ring
        self.ttl_seconds = ttl_seconds

    def issue(self, *, subject: str, email: str, role: str, now: float | None = None) -> str:
        """A signed access token for a user id."""
        import jwt

        iat = int(time.time() if now is None else now)
        kid, secret = self.ring.signing
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "email": email,
            "role": role,
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
            "auth_type": "platform_jwt",
        }
        return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})

    def verify(self, token: str) -> AccessClaims:
        """Verified claims, or TokenError."""
        import jwt

        try:
            header: Mapping[str, Any] = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"algorithm {header.get('alg')!r} not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenError("token has no key id")
        secret = self.ring.get(kid)
        if secret is None:
            raise TokenError(f"unknown key id {kid!r}")
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise TokenError("token has no subject")
        return AccessClaims(
            subject=sub,
            email=str(claims.get("email", "")),
            role=str(claims.get("role", "")),
            expires_at=int(claims["exp"]),
            token_id=str(claims.get("jti", "")),
        )
