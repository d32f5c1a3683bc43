"""Who may deliver events to the processor: only the event source (issue 14 item 4).

Without this, anything that reached the processor's address could store audit rows directly,
bypassing ingest's per-gateway bindings. Two credentials, both in `Authorization: Bearer`:

* **Knative sender identity** (`PROCESSOR_OIDC_*`): with Eventing's `authentication-oidc`
  feature the KafkaSource dispatcher sends an OIDC token of the source's own service account,
  issued for the sink's audience (`spec.sink.audience` in eventing/kafka-source.yaml). It is
  verified against the cluster's service-account issuer JWKS; `aud` must be
  `PROCESSOR_OIDC_AUDIENCE` and `sub` one of `PROCESSOR_OIDC_SUBJECTS` when that is set.
* **A static delivery token** (`PROCESSOR_DELIVERY_TOKEN`, comma list while rotating, 32 bytes
  or more): what the local dispatcher (`localstack.kafka_source`, `SINK_AUTH_TOKEN`) sends.

With neither configured every delivery is refused (503 `auth_not_configured`) unless
`PROCESSOR_ALLOW_UNAUTHENTICATED=true`. A NetworkPolicy (knative/network/policies.yaml) admits
only the Knative data plane as a second, independent fence.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jwt

    from functions.processor.settings import ProcessorSettings

_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
_CACHE_MAX = 64  # the dispatcher reuses one token until it nears expiry: verify it once


@dataclass(frozen=True)
class DeliveryCheck:
    """Outcome of checking one delivery's credential."""

    ok: bool
    status: int = 200
    error: str = ""
    message: str = ""


class DeliveryAuth:
    """Checks the bearer credential of each delivery."""

    def __init__(self, settings: ProcessorSettings, jwks_client: jwt.PyJWKClient | None = None) -> None:
        self._tokens = tuple(t.encode() for t in settings.delivery_tokens)
        self._audience = settings.oidc_audience
        self._issuer = settings.oidc_issuer or None
        self._subjects = frozenset(settings.oidc_subjects)
        self._allow_open = settings.allow_unauthenticated
        self._jwks = jwks_client
        if self._jwks is None and settings.oidc_jwks_url:
            import jwt  # deferred: token-only deployments never load cryptography

            self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=600, timeout=5)
        self._verified: dict[str, float] = {}

    @property
    def configured(self) -> bool:
        """True when at least one credential kind is accepted."""
        return bool(self._tokens) or self._jwks is not None

    async def check_async(self, headers: Mapping[str, str]) -> DeliveryCheck:
        """`check` off the event loop when it may fetch the JWKS (a token not verified before)."""
        if self._jwks is None:
            return self.check(headers)
        authz = headers.get("authorization", "")
        exp = self._verified.get(authz[7:].strip()) if authz[:7].lower() == "bearer " else None
        if exp is not None and exp > time.time() + 5:
            return DeliveryCheck(True)
        return await asyncio.to_thread(self.check, headers)

    def check(self, headers: Mapping[str, str]) -> DeliveryCheck:
        """Accept or refuse a delivery from its (lower-cased) headers."""
        if not self.configured:
            if self._allow_open:
                return DeliveryCheck(True)
            return DeliveryCheck(
                False, 503, "auth_not_configured",
                "processor has no PROCESSOR_DELIVERY_TOKEN and no PROCESSOR_OIDC_JWKS_URL; refusing deliveries "
                "(set PROCESSOR_ALLOW_UNAUTHENTICATED=true only for local development)",
            )  # fmt: skip
        authz = headers.get("authorization", "")
        if authz[:7].lower() != "bearer ":
            return DeliveryCheck(False, 401, "unauthorized", "deliveries need the event source's bearer credential")
        presented = authz[7:].strip()
        match = False
        for token in self._tokens:  # every token compared: timing reveals nothing
            match |= hmac.compare_digest(presented.encode(), token)
        if match:
            return DeliveryCheck(True)
        if self._jwks is not None:
            return self._check_jwt(presented)
        return DeliveryCheck(False, 401, "unauthorized", "delivery credential rejected")

    def _check_jwt(self, token: str) -> DeliveryCheck:
        now = time.time()
        exp = self._verified.get(token)
        if exp is not None and exp > now + 5:
            return DeliveryCheck(True)
        assert self._jwks is not None
        import jwt

        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=_ALGORITHMS, audience=self._audience, issuer=self._issuer,
                options={"require": ["exp", "aud", "sub"]},
            )  # fmt: skip
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            return DeliveryCheck(False, 401, "unauthorized", f"delivery token rejected: {exc}")
        if self._subjects and claims.get("sub") not in self._subjects:
            return DeliveryCheck(False, 403, "forbidden", "this service account is not the event source")
        if len(self._verified) >= _CACHE_MAX:
            self._verified = {t: e for t, e in self._verified.items() if e > now}
            if len(self._verified) >= _CACHE_MAX:
                self._verified.clear()
        self._verified[token] = float(claims["exp"])
        return DeliveryCheck(True)
