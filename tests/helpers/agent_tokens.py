"""Helpers shared by the api tests and others (their fixtures: tests/api/conftest.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from localstack.config import Ports
from tests.fixtures.sidecar import SidecarProcess, serve_app
from tests.helpers.api import ADMIN_KEY, Api

PUBLIC = "https://sentinel.example.com"


ISSUER = f"{PUBLIC}/api"


@dataclass
class Env:
    api: Api
    ns: str
    member: dict[str, str]
    member_id: str
    other: dict[str, str]
    out: Path

    def policy(self, server: str = "srv") -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.out / self.ns / f"{server}.json").read_text())
        return doc


ADMIN = {"x-api-key": ADMIN_KEY}


TOOLS = [{"name": "search", "sideEffect": "read"}]


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


async def session_for(e: Env, agent: str = "bot", server: str = "srv") -> str:
    r = await e.api.client.post("/api/runtime/adapter/sessions", headers=e.member,
                                json={"serverName": server, "namespace": e.ns, "agentID": agent})  # fmt: skip
    assert r.status_code == 200, r.text
    name: str = r.json()["name"]
    return name


async def mint(e: Env, session: str, headers: dict[str, str]) -> httpx.Response:
    return await e.api.client.post("/api/agent-tokens", json={"namespace": e.ns, "session": session}, headers=headers)


@asynccontextmanager
async def platform_gateway(env: Env, log: Path) -> AsyncIterator[str]:
    """A real sidecar in `platform` mode over the API-rendered policy of `env`'s server `srv`: it verifies
    tokens offline against the API's JWKS (served over real HTTP) and fronts a permissive upstream that
    executes whatever reaches it. Yields the gateway's `/mcp` URL."""
    ports = Ports.free()
    c = env.api.client

    async def jwks(_r: web.Request) -> web.Response:  # the API's JWKS route, over real HTTP
        got = await c.get("/api/.well-known/jwks.json")
        return web.json_response(got.json(), status=got.status_code)

    async def upstream(request: web.Request) -> web.Response:  # permissive: executes whatever reaches it
        msg = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": msg.get("id"), "result": {"executed": True}})

    jwks_app, up_app = web.Application(), web.Application()
    jwks_app.router.add_get("/api/.well-known/jwks.json", jwks)
    up_app.router.add_post("/mcp", upstream)
    runners = [await serve_app(jwks_app, ports.api), await serve_app(up_app, ports.sample_mcp)]
    try:
        sc = await asyncio.to_thread(SidecarProcess, {
            "PORT": str(ports.sidecar_a), "METRICS_PORT": str(ports.sidecar_a_metrics), "LISTEN_HOST": "127.0.0.1",
            "UPSTREAM_URL": f"http://127.0.0.1:{ports.sample_mcp}", "POLICY_FILE": str(env.out / env.ns / "srv.json"),
            "PLATFORM_TOKEN_ISSUER": ISSUER,
            "PLATFORM_JWKS_URL": f"http://127.0.0.1:{ports.api}/api/.well-known/jwks.json",
        }, log)  # fmt: skip
        try:
            yield f"http://127.0.0.1:{ports.sidecar_a}/mcp"
        finally:
            await asyncio.to_thread(sc.stop)
    finally:
        for runner in runners:
            await runner.cleanup()
