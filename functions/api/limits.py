"""Request body caps (Appendix A) and the `/api/v1` alias, as one small ASGI middleware.

The body is read fully (up to the cap) before the app sees it, so an oversize body gets 413
`request_too_large` whether or not the client sent Content-Length.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CAP = 64 * 1024
# Path -> cap in bytes; login-style bodies are tiny, so big ones are refused early.
CAPS: dict[str, int] = {
    "/api/auth/login": 4 * 1024,
    "/api/auth/signup": 4 * 1024,
    "/api/users": 4 * 1024,
    "/api/auth/oidc": 8 * 1024,
    "/api/auth/oidc/link": 8 * 1024,
    "/api/user/activity/image-publish": 16 * 1024,
}


def cap_for(path: str) -> int:
    """The body cap for a (normalised) path."""
    return CAPS.get(path.rstrip("/") or "/", DEFAULT_CAP)


class BodyLimitMiddleware:
    """Enforces body caps and maps `/api/v1/...` onto `/api/...`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/api/v1/"):
            path = "/api/" + path[len("/api/v1/") :]
            scope = {**scope, "path": path, "raw_path": path.encode()}
        cap = cap_for(path)
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            await _too_large(send, cap)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body: bytes = message.get("body", b"")
            size += len(body)
            if size > cap:
                await _too_large(send, cap)
                return
            chunks.append(body)
            more = bool(message.get("more_body", False))
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay_receive() -> Message:
            if replay:
                return replay.pop()
            return await receive()

        await self.app(scope, replay_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, cap: int) -> None:
    body: dict[str, Any] = {"error": "request_too_large", "message": f"request body exceeds {cap} bytes"}
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
