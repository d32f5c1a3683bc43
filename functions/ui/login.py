"""Turning what the sign-in form sent into an API credential and a principal.

Every mode ends by asking the API who the credential belongs to (`/api/auth/me`), so the UI
never decides roles itself. API-key sign-in validates the key the user typed against the API
and stores *that* key, instead of upstream's shared UI key that turned any holder of `API_KEY`
into an admin with the UI's own upstream credential.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx


class LoginFailed(Exception):
    """Sign-in did not succeed; carries the status and envelope to return."""

    def __init__(self, status: int, code: str, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def bad_credentials(self) -> bool:
        """Counts toward the failure lockout (upstream outages do not)."""
        return self.status == 401


@dataclass(frozen=True)
class Credential:
    """What the proxy injects upstream, and until when it is good."""

    kind: str  # "bearer" or "api_key"
    value: str
    expires_at: float | None

    def headers(self) -> dict[str, str]:
        """The header carrying this credential."""
        if self.kind == "api_key":
            return {"x-api-key": self.value}
        return {"authorization": f"Bearer {self.value}"}


def principal_from_me(body: dict[str, Any]) -> dict[str, Any]:
    """Snake-case principal from `/api/auth/me` (which keeps upstream's camelCase)."""
    p = body.get("principal") or {}
    out: dict[str, Any] = {"role": p.get("role", "user")}
    for src, dst in (("subject", "subject"), ("email", "email"), ("namespace", "namespace"), ("authType", "auth_type")):
        if p.get(src):
            out[dst] = p[src]
    if p.get("allowedNamespaces"):
        out["allowed_namespaces"] = p["allowedNamespaces"]
    if p.get("teams"):
        out["teams"] = p["teams"]
    return out


def _envelope(resp: httpx.Response) -> tuple[str, str]:
    try:
        body = resp.json()
    except ValueError:
        return "upstream_error", resp.text[:200]
    if not isinstance(body, dict):
        return "upstream_error", str(body)[:200]
    return str(body.get("error", "upstream_error")), str(body.get("message", ""))


class ApiLogin:
    """Calls the API's sign-in endpoints on behalf of the browser."""

    def __init__(self, client: httpx.AsyncClient, upstream: str) -> None:
        self._client = client
        self._upstream = upstream

    async def _call(self, method: str, path: str, client_ip: str, **kw: Any) -> httpx.Response:
        headers = {"x-mcp-source": "ui", "x-forwarded-for": client_ip, **kw.pop("headers", {})}
        try:
            return await self._client.request(method, self._upstream + path, headers=headers, timeout=10.0, **kw)
        except httpx.HTTPError as exc:
            raise LoginFailed(502, "api_unavailable", f"the API is not reachable: {type(exc).__name__}") from None

    def _fail(self, resp: httpx.Response) -> LoginFailed:
        code, message = _envelope(resp)
        if resp.status_code == 401:
            return LoginFailed(401, "unauthorized", message or "invalid credentials")
        if resp.status_code == 429:
            return LoginFailed(429, "too_many_requests", message, resp.headers.get("retry-after"))
        if resp.status_code in (400, 403, 409):
            return LoginFailed(resp.status_code, code, message)
        if resp.status_code == 503:
            return LoginFailed(503, code or "service_unavailable", message)
        if resp.status_code == 404 and code == "not_configured":  # e.g. OIDC sign-in on an API without it
            return LoginFailed(404, code, message)
        return LoginFailed(502, "api_unavailable", f"the API answered {resp.status_code}")

    async def password(self, email: str, password: str, client_ip: str) -> Credential:
        """Email/password via `/api/auth/login`; the session lives no longer than the token."""
        resp = await self._call("POST", "/api/auth/login", client_ip, json={"email": email, "password": password})
        if resp.status_code != 200:
            raise self._fail(resp)
        body = resp.json()
        return Credential("bearer", body["access_token"], time.time() + float(body.get("expires_in", 900)))

    async def id_token(self, token: str, nonce: str, client_ip: str) -> Credential:
        """An OIDC ID token and its sign-in's nonce, exchanged at `/api/auth/oidc` for the API's own token.

        The ID token itself is never kept as the session's credential: it is not an API credential.
        """
        resp = await self._call("POST", "/api/auth/oidc", client_ip, json={"id_token": token, "nonce": nonce})
        if resp.status_code != 200:
            raise self._fail(resp)
        body = resp.json()
        return Credential("bearer", body["access_token"], time.time() + float(body.get("expires_in", 900)))

    async def principal(self, cred: Credential, client_ip: str) -> dict[str, Any]:
        """Who the credential is, according to the API (401 when it is not valid)."""
        resp = await self._call("GET", "/api/auth/me", client_ip, headers=cred.headers())
        if resp.status_code != 200:
            raise self._fail(resp)
        return principal_from_me(resp.json())
