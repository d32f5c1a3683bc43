"""What every UI route needs, hung on `app.state.ctx` by the app factory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse

from functions.ui.login import ApiLogin
from functions.ui.oidc_flow import OidcFlow
from functions.ui.ratelimit import LoginLimiter, client_address
from functions.ui.sessions import Session, SessionStore
from functions.ui.settings import UiSettings

COOKIE = "mcp_ui_session"


@dataclass
class UiContext:
    """Settings plus the long-lived objects built from them."""

    settings: UiSettings
    store: SessionStore
    limiter: LoginLimiter
    client: httpx.AsyncClient | None = None
    oidc_flow: OidcFlow | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def login(self) -> ApiLogin:
        """Sign-in calls against the API."""
        assert self.client is not None, "UI app used outside its lifespan"
        return ApiLogin(self.client, self.settings.api_upstream)

    def client_ip(self, request: Request) -> str:
        """The real client address (see ratelimit.client_address)."""
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.get("x-forwarded-for"), self.settings.trusted_proxies)

    async def session(self, request: Request) -> Session | None:
        """The request's live session, if any."""
        return await self.store.get(request.cookies.get(COOKIE))


def ctx_of(request: Request) -> UiContext:
    """The UiContext of the app serving this request."""
    ctx: UiContext = request.app.state.ctx
    return ctx


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The `{"error","message"}` envelope the API uses too."""
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def dumps(value: Any) -> str:
    """Compact JSON for embedding in config.js (escapes `<` so it can never close a script)."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")
