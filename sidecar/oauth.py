"""OAuth 2.1 resource-server checks: issuer discovery, cached JWKS, JWT verification (§3.11, §3.12).

`jwt` (with cryptography, about 50 ms of imports) is loaded by `preload()` when a policy that
uses OAuth is activated (the sidecar's reload hook), not with this module: header-mode sidecars
never verify a JWT, and an OAuth sidecar loads it with its policy, before its first request.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from sidecar.errors import AuthFailure as AuthFailure  # re-exported: raised here

# Asymmetric algorithms only: `none` and HS* (shared secrets an issuer's JWKS cannot safely carry) never verify.
ALLOWED_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
JWKS_TTL = 600.0
_UNKNOWN_KID_REFRESH = 30.0
_READ_LIMIT = 1024 * 1024


def preload() -> None:
    """Import the JWT library now (called when an OAuth policy is activated); idempotent and cheap after."""
    import jwt  # noqa: F401 - see module docstring


@dataclass
class _Provider:
    jwks_uri: str
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> PyJWK
    fetched_at: float = 0.0


def discovery_urls(issuer: str) -> list[str]:
    """Metadata URLs tried in order (RFC 8414, OIDC discovery, and the path-inserted forms)."""
    base = issuer.rstrip("/")
    urls = [f"{base}/.well-known/oauth-authorization-server", f"{base}/.well-known/openid-configuration"]
    parts = urlsplit(issuer)
    path = parts.path.strip("/")
    if path:
        root = f"{parts.scheme}://{parts.netloc}"
        urls += [
            f"{root}/.well-known/oauth-authorization-server/{path}",
            f"{root}/.well-known/openid-configuration/{path}",
        ]
    return urls


class OAuthVerifier:
    """Verifies bearer tokens for one sidecar; providers are discovered once per issuer."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._providers: dict[str, _Provider] = {}

    async def _get_json(self, url: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=3)
        async with self._session.get(url, timeout=timeout, headers={"Accept": "application/json"}) as resp:
            if not 200 <= resp.status < 300:
                raise AuthFailure("oauth_provider_unavailable", 503, f"{url} answered {resp.status}")
            raw = await resp.content.read(_READ_LIMIT + 1)
            if len(raw) > _READ_LIMIT:
                raise AuthFailure("oauth_provider_unavailable", 503, f"{url} response too large")
            return json.loads(raw)

    async def _provider(self, issuer: str) -> _Provider:
        prov = self._providers.get(issuer)
        if prov is not None:
            return prov
        last = ""
        for url in discovery_urls(issuer):
            try:
                meta = await self._get_json(url)
            except (AuthFailure, aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
                last = str(exc)
                continue
            if isinstance(meta, dict) and isinstance(meta.get("jwks_uri"), str) and meta["jwks_uri"]:
                prov = _Provider(jwks_uri=meta["jwks_uri"])
                self._providers[issuer] = prov  # success is cached; failures are retried next request
                return prov
        raise AuthFailure("oauth_provider_unavailable", 503, f"issuer discovery failed for {issuer}: {last}")

    async def _refresh(self, prov: _Provider) -> None:
        import jwt  # normally preloaded with the policy; a dict lookup then

        try:
            doc = await self._get_json(prov.jwks_uri)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            raise AuthFailure("oauth_provider_unavailable", 503, f"JWKS fetch failed: {exc}") from exc
        keys: dict[str, Any] = {}
        for k in doc.get("keys", []) if isinstance(doc, dict) else []:
            try:
                jwk = jwt.PyJWK(k)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # unusable or symmetric key: skip it rather than fail every token
            if jwk.key_type == "oct":
                continue
            keys[str(k.get("kid", ""))] = jwk
        prov.keys = keys
        prov.fetched_at = time.monotonic()

    async def verify(self, token: str, *, issuer: str, audience: str) -> dict[str, Any]:
        """Validated claims, or `AuthFailure` (`invalid_token` 401 / `oauth_provider_unavailable` 503)."""
        import jwt  # normally preloaded with the policy; a dict lookup then

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthFailure("invalid_token", 401, f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGS:
            raise AuthFailure("invalid_token", 401, f"algorithm {alg!r} is not accepted")
        prov = await self._provider(issuer)
        now = time.monotonic()
        if not prov.keys or now - prov.fetched_at > JWKS_TTL:
            await self._refresh(prov)
        kid = str(header.get("kid", ""))
        key = prov.keys.get(kid)
        if key is None and now - prov.fetched_at > _UNKNOWN_KID_REFRESH:
            await self._refresh(prov)  # key rotation: one refresh, rate-limited
            key = prov.keys.get(kid)
        if key is None and not kid and len(prov.keys) == 1:
            key = next(iter(prov.keys.values()))
        if key is None:
            raise AuthFailure("invalid_token", 401, f"no signing key {kid!r} in the issuer's JWKS")
        if key.algorithm_name and key.algorithm_name != alg:
            raise AuthFailure("invalid_token", 401, "token algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                issuer=issuer,
                audience=audience,
                options={"require": ["exp", "iss", "aud"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise AuthFailure("invalid_token", 401, f"{exc.__class__.__name__}: {exc}") from exc
        return claims


def bearer_from(header_name: str, value: str | None) -> str:
    """The token in a token header ('' when absent or not a Bearer credential on Authorization)."""
    if not value:
        return ""
    value = value.strip()
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return "" if header_name.lower() == "authorization" else value


def claims_identity(claims: dict[str, Any]) -> tuple[str, str, str, str]:
    """(human, agent, team, session) from token claims (§3.11 step 4)."""

    def pick(*names: str) -> str:
        for n in names:
            v = claims.get(n)
            if isinstance(v, str) and v.strip():
                return v.strip()
        return ""

    return pick("sub"), pick("azp", "client_id"), pick("team_id", "tenant_id", "tid"), pick("sid")
