"""Helpers shared by the api tests and others (their fixtures: tests/api/conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

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
