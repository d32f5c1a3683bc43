"""The agent side of platform identity: an agent session and its short-lived token, from the API.

`sentinel connect` acts for the signed-in *user*: a user API key (`mcpu_…`, env `SENTINEL_API_KEY`)
or an email/password sign-in (env `SENTINEL_EMAIL` / `SENTINEL_PASSWORD`, re-signed-in whenever the
API answers 401, i.e. when the sign-in token lapsed). Service keys cannot mint: a platform token is
bound to one human. With that credential it asks `POST /api/runtime/adapter/sessions` for (or
reuses) the caller's session on the server, then `POST /api/agent-tokens` for a token bound to that
session. Both answers are checked; any refusal is an `IdentityError` carrying the API's reason, so
the bridge can tell "revoked" apart from "the API is down".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

# Refresh this long before `exp` (or at 80 % of the lifetime for a very short token): a call in
# flight when the token lapses would otherwise be refused by the gateway.
REFRESH_MARGIN = 60.0


class IdentityError(Exception):
    """The API refused (or could not be asked for) a session or a token; `reason` is its error code."""

    def __init__(self, message: str, reason: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Credential:
    """How the CLI signs in to the API: a user API key, or an email and password."""

    api_key: str = ""
    email: str = ""
    password: str = ""


@dataclass(frozen=True)
class Token:
    """A platform token and where it is valid."""

    access_token: str
    expires_at: float  # epoch seconds
    expires_at_text: str
    resource: str
    session: str
    namespace: str

    def refresh_at(self, issued: float) -> float:
        lifetime = max(0.0, self.expires_at - issued)
        return self.expires_at - min(REFRESH_MARGIN, lifetime * 0.2)


@dataclass
class AgentIdentity:
    """One agent's session on one server, with a token refreshed before expiry or on demand."""

    api_url: str
    credential: Credential
    server: str
    namespace: str
    agent: str
    trust: str = ""
    ttl: str = ""
    timeout: float = 15.0
    token: Token | None = None
    _bearer: str = ""
    _refresh_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _call(self, http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in (1, 2):
            headers = {"accept": "application/json"}
            if self.credential.api_key:
                headers["x-api-key"] = self.credential.api_key
            else:
                if not self._bearer:
                    await self._sign_in(http)
                headers["authorization"] = f"Bearer {self._bearer}"
            url = self.api_url.rstrip("/") + path
            try:
                resp = await http.post(url, json=body, headers=headers, timeout=self.timeout)
            except httpx.HTTPError as exc:
                raise IdentityError(f"cannot reach the API at {self.api_url}: {exc.__class__.__name__}",
                                    "api_unreachable") from exc
            if resp.status_code == 401 and self.credential.email and attempt == 1:
                self._bearer = ""  # the sign-in token lapsed: sign in again once
                continue
            return _answer(resp, path)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _sign_in(self, http: httpx.AsyncClient) -> None:
        url = self.api_url.rstrip("/") + "/api/auth/login"
        try:
            resp = await http.post(url, json={"email": self.credential.email, "password": self.credential.password},
                                   timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise IdentityError(f"cannot reach the API at {self.api_url}: {exc.__class__.__name__}",
                                "api_unreachable") from exc
        body = _answer(resp, "/api/auth/login")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise IdentityError("sign-in answered without an access token", "bad_answer", resp.status_code)
        self._bearer = token

    async def fetch(self, http: httpx.AsyncClient) -> Token:
        """A fresh token: (re)use the caller's session on the server, then mint for it."""
        session_body: dict[str, Any] = {"serverName": self.server, "namespace": self.namespace, "agentID": self.agent}
        if self.trust:
            session_body["requestedTrust"] = self.trust
        if self.ttl:
            session_body["requestedTTL"] = self.ttl
        session = await self._call(http, "/api/runtime/adapter/sessions", session_body)
        name, ns = str(session.get("name") or ""), str(session.get("namespace") or self.namespace)
        if not name:
            raise IdentityError("the API answered a session without a name", "bad_answer")
        issued = time.time()
        minted = await self._call(http, "/api/agent-tokens", {"namespace": ns, "session": name})
        access, expires_in = minted.get("access_token"), minted.get("expires_in")
        if not isinstance(access, str) or not access or not isinstance(expires_in, int | float):
            raise IdentityError("the API answered a token without access_token/expires_in", "bad_answer")
        token = Token(access, issued + float(expires_in), str(minted.get("expires_at") or ""),
                      str(minted.get("resource") or ""), name, ns)
        self.token = token
        self._refresh_at = token.refresh_at(issued)
        return token

    async def current(self, http: httpx.AsyncClient, *, force: bool = False, stale: str = "") -> Token:
        """The token to send now; refreshed when due, or when `force` and nobody refreshed it since `stale`."""
        async with self._lock:
            token = self.token
            due = token is None or time.time() >= self._refresh_at
            if force and token is not None and token.access_token != stale:
                return token  # another request already refreshed it
            if due or force:
                return await self.fetch(http)
            assert token is not None
            return token

    def seconds_to_refresh(self) -> float:
        return max(0.0, self._refresh_at - time.time())


def _answer(resp: httpx.Response, path: str) -> dict[str, Any]:
    try:
        data = resp.json() if resp.content else {}
    except ValueError:
        data = {}
    if resp.status_code >= 400 or not isinstance(data, dict):
        detail = data if isinstance(data, dict) else {}
        err = detail.get("error")
        reason = str(err.get("code") or "") if isinstance(err, dict) else str(err or "")
        message = str(detail.get("message") or (err.get("message") if isinstance(err, dict) else "") or
                      detail.get("detail") or resp.text[:200])
        hint = ""
        if resp.status_code in (401, 403) and not reason.startswith("session_"):
            hint = " (a *user* API key or sign-in is needed: service keys cannot act for a human)"
        raise IdentityError(f"POST {path} -> HTTP {resp.status_code}: {message}{hint}",
                            reason or f"http_{resp.status_code}", resp.status_code)
    return data
