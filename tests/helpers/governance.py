"""Shared by the governance API tests: a team with a server (`Gov`; its fixture `gov`: tests/api/conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fixtures.kube import LocalKube
from tests.helpers.agent_tokens import bearer as bearer  # one definition, shared
from tests.helpers.api import ADMIN_KEY, Api

ADMIN = {"x-api-key": ADMIN_KEY}
TOOLS = [
    {"name": "search", "sideEffect": "read"},
    {"name": "delete", "sideEffect": "destructive", "requiredTrust": "high"},
]


@dataclass
class Gov:
    api: Api
    kube: LocalKube
    out: Path
    ns: str
    team: dict[str, Any]
    owner: dict[str, str]
    owner_id: str
    member: dict[str, str]
    member_id: str
    other: dict[str, str]

    def policy_file(self, server: str = "srv") -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.out / self.ns / f"{server}.json").read_text())
        return doc




def grant(g: Gov, **over: Any) -> dict[str, Any]:
    body = {"name": "g1", "namespace": g.ns, "serverRef": {"name": "srv"},
            "subject": {"humanID": g.member_id, "agentID": "bot"}, "maxTrust": "medium",
            "allowedSideEffects": ["read"], "toolRules": [{"name": "search", "decision": "allow"}]}
    body.update(over)
    return body
