"""`state` and `nonce` for OIDC sign-in through the UI (Google Identity Services or any ID-token flow).

`POST /auth/oidc/start` mints a random `state` and `nonce` and keeps both in a short-lived signed
cookie. The page hands the nonce to the provider, which copies it into the ID token; the page then
posts the ID token with the state to `/auth/login`. The UI checks the state against the cookie
(the answer belongs to a sign-in this browser started) and passes the cookie's nonce to the API,
which checks it against the token's `nonce` claim and spends it (a captured token cannot be
replayed from another browser, or twice).
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

COOKIE = "mcp_ui_oidc"
COOKIE_PATH = "/auth"
MAX_AGE_SECONDS = 600


@dataclass(frozen=True)
class Started:
    """A started sign-in: what the page gets, and the cookie value that remembers it."""

    state: str
    nonce: str
    cookie: str


class OidcFlow:
    """Mints and checks sign-in state (signed with the UI's cookie secret, its own salt)."""

    def __init__(self, secret: str) -> None:
        self._signer = TimestampSigner(secret, salt="mcp-sentinel-ui-oidc")

    def start(self) -> Started:
        """A fresh state and nonce."""
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        payload = json.dumps({"s": state, "n": nonce}, separators=(",", ":"))
        return Started(state, nonce, self._signer.sign(payload).decode())

    def nonce_for(self, cookie: str | None, state: str) -> str | None:
        """The nonce of the sign-in `state` belongs to, or None (no, forged, expired or other cookie)."""
        if not cookie or not state:
            return None
        try:
            raw = self._signer.unsign(cookie, max_age=MAX_AGE_SECONDS)
            data = json.loads(raw)
        except (BadSignature, SignatureExpired, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("s"), str) or not isinstance(data.get("n"), str):
            return None
        if not hmac.compare_digest(data["s"].encode(), state.encode()):
            return None
        return str(data["n"])
