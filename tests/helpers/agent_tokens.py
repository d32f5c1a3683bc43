"""Helpers shared by the api tests and others (their fixtures: tests/api/conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
