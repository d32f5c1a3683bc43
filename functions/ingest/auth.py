"""Who may write audit events (upstream §5.3, minus its open-by-default bug §11.22).

Order: ingest key (`x-api-key`, constant-time compare against every configured key) → OIDC
bearer JWT verified against the JWKS → 401. With no keys and no JWKS configured, writes are
refused with 503 `auth_not_configured` unless `INGEST_ALLOW_UNAUTHENTICATED=true`.

`jwt` (and the `cryptography` it loads, about 50-90 ms of a cold start) is imported only when an
OIDC JWKS is configured: key-only deployments never verify a JWT.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.ingest.settings import ApiKey, IngestSettings

if TYPE_CHECKING:
    import jwt

_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]


@dataclass(frozen=True)
class AuthResult:
    """Outcome of authenticating one request; `source_prefixes` empty means any source."""

    ok: bool
    status: int = 200
    error: str = ""
    message: str = ""
    principal: str = ""
    source_prefixes: tuple[str, ...] = ()

    def source_allowed(self, source: str) -> bool:
        """Whether this caller may write events with `source` (anti-forgery binding)."""
        return not self.source_prefixes or any(source.startswith(p) for p in self.source_prefixes)


class Authenticator:
    """Checks `/events` requests against the configured keys and OIDC issuer."""

    def __init__(self, settings: IngestSettings, jwks_client: jwt.PyJWKClient | None = None) -> None:
        self._keys: tuple[ApiKey, ...] = settings.api_keys
        self._issuer = settings.oidc_issuer or None
        self._audience = settings.oidc_audience or None
        self._allow_open = settings.allow_unauthenticated
        self._jwks = jwks_client
        if self._jwks is None and settings.oidc_jwks_url:
            import jwt  # deferred: see module docstring

            self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=600, timeout=5)

    @property
    def configured(self) -> bool:
        """True when at least one credential source exists."""
        return bool(self._keys) or self._jwks is not None

    def check(self, headers: Mapping[str, str]) -> AuthResult:
        """Authenticate a request from its (lower-cased) headers."""
        if not self.configured:
            if self._allow_open:
                return AuthResult(True, principal="anonymous")
            return AuthResult(
                False, 503, "auth_not_configured",
                "ingest has no INGEST_API_KEYS/API_KEYS and no OIDC_JWKS_URL; refusing writes "
                "(set INGEST_ALLOW_UNAUTHENTICATED=true only for local development)",
            )
        presented = headers.get("x-api-key", "").strip()
        if presented and self._keys:
            match: ApiKey | None = None
            for key in self._keys:
                # Compare against every key without stopping early so timing reveals nothing.
                if hmac.compare_digest(presented.encode(), key.key.encode()):
                    match = key
            if match is not None:
                return AuthResult(True, principal="api-key", source_prefixes=match.source_prefixes)
        bearer = headers.get("authorization", "")
        if self._jwks is not None and bearer[:7].lower() == "bearer ":
            return self._check_jwt(bearer[7:].strip())
        return AuthResult(False, 401, "unauthorized", "missing or invalid x-api-key or bearer token")

    def _check_jwt(self, token: str) -> AuthResult:
        assert self._jwks is not None
        import jwt  # already loaded by whoever built the JWKS client; this is a dict lookup

        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, signing_key.key, algorithms=_ALGORITHMS, audience=self._audience, issuer=self._issuer,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            return AuthResult(False, 401, "invalid_token", "token expired")
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as exc:
            return AuthResult(False, 401, "invalid_token", str(exc))
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            return AuthResult(False, 401, "unauthorized", f"bearer token rejected: {exc}")
        return AuthResult(True, principal=f"jwt:{claims.get('sub', '')}")
