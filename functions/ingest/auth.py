"""Who may write audit events, and for which server (upstream §5.3, minus its bugs §11.22 and issue 14).

Order: per-gateway credential (`x-api-key: sgw1.…`, HMAC-verified with `INGEST_GATEWAY_SECRET`)
→ static key (`x-api-key`, constant-time compare against every configured key) → OIDC bearer
JWT verified against the JWKS → 401. With no credential source configured, writes are refused
with 503 `auth_not_configured` unless `INGEST_ALLOW_UNAUTHENTICATED=true`.

Every accepted credential carries a `GatewayBinding` (namespace, server, team) that the app
holds each event to. JWT writers are bound through their `namespace`/`server` claims (and
`team_id`); a JWT without them is refused. A static key without a binding is refused with 403
unless `INGEST_ALLOW_UNBOUND_KEYS=true` (local development only).

`jwt` (and the `cryptography` it loads, about 50-90 ms of a cold start) is imported only when an
OIDC JWKS is configured: key-only deployments never verify a JWT.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.ingest.settings import ApiKey, IngestSettings
from mcp_sentinel.gateway_credentials import GatewayBinding, binding_from_claims, looks_like_credential, verify

if TYPE_CHECKING:
    import jwt

_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]


_DELIMITERS = ("/", ":", "#")


def source_matches(prefix: str, source: str) -> bool:
    """`source` is `prefix` itself or lies under it at a delimiter (`gw` admits `gw/x`, never `gw-evil`)."""
    if source == prefix:
        return True
    if prefix.endswith(_DELIMITERS):
        return source.startswith(prefix)
    return any(source.startswith(prefix + d) for d in _DELIMITERS)


@dataclass(frozen=True)
class AuthResult:
    """Outcome of authenticating one request.

    `binding` is the server this caller may write for (None: unbound, local development only);
    `source_prefixes` empty means any source.
    """

    ok: bool
    status: int = 200
    error: str = ""
    message: str = ""
    principal: str = ""
    source_prefixes: tuple[str, ...] = ()
    binding: GatewayBinding | None = None

    def source_allowed(self, source: str) -> bool:
        """Whether this caller may write events with `source` (prefixes match on a delimiter)."""
        return not self.source_prefixes or any(source_matches(p, source) for p in self.source_prefixes)


class Authenticator:
    """Checks `/events` requests against the configured keys and OIDC issuer."""

    def __init__(self, settings: IngestSettings, jwks_client: jwt.PyJWKClient | None = None) -> None:
        self._keys: tuple[ApiKey, ...] = settings.api_keys
        self._issuer = settings.oidc_issuer or None
        self._audience = settings.oidc_audience or None
        self._allow_open = settings.allow_unauthenticated
        self._allow_unbound = settings.allow_unbound_keys
        self._gateway_secrets = settings.gateway_secrets
        self._jwks = jwks_client
        if self._jwks is None and settings.oidc_jwks_url:
            import jwt  # deferred: see module docstring

            self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=600, timeout=5)

    @property
    def configured(self) -> bool:
        """True when at least one credential source exists."""
        return bool(self._keys) or bool(self._gateway_secrets) or self._jwks is not None

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
        if presented and self._gateway_secrets and looks_like_credential(presented):
            binding = verify(self._gateway_secrets, presented)
            if binding is None:
                return AuthResult(False, 401, "unauthorized", "gateway credential rejected")
            return AuthResult(True, principal=f"gateway:{binding.namespace}/{binding.server}", binding=binding)
        if presented and self._keys:
            match: ApiKey | None = None
            for key in self._keys:
                # Compare against every key without stopping early so timing reveals nothing.
                if hmac.compare_digest(presented.encode(), key.key.encode()):
                    match = key
            if match is not None:
                if match.binding is None and not self._allow_unbound:
                    return AuthResult(False, 403, "credential_unbound",
                                      "this key is not bound to a server (server=<namespace>/<name>)")
                return AuthResult(True, principal="api-key", source_prefixes=match.source_prefixes,
                                  binding=match.binding)
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
        binding = binding_from_claims(claims)
        if binding is None:
            # A writer token must say which server it writes for; an IdP token for anything else
            # (or one naming no server) is no ingest credential.
            return AuthResult(False, 403, "credential_unbound",
                              "bearer token has no valid `namespace`/`server` claims binding it to a server")
        return AuthResult(True, principal=f"jwt:{claims.get('sub', '')}", binding=binding)
