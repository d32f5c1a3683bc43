"""Quotas from the operator's side, end to end: a grant applied through the API with `quotas`, the
API-rendered policy file, a real sidecar in `platform` mode, agent tokens for two sessions.

Per-session counters are per agent session the API opened; the per-human quota counts across them.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from tests.helpers.agent_tokens import ADMIN, Env, mint, platform_gateway, session_for


@pytest.mark.timeout(180)
async def test_a_grant_quota_applied_through_the_api_is_enforced_by_the_gateway(
    env: Env, tmp_path: Path
) -> None:
    c = env.api.client
    grant = {"name": "g-srv", "namespace": env.ns, "serverRef": {"name": "srv"},
             "subject": {"humanID": env.member_id}, "maxTrust": "low", "allowedSideEffects": ["read"],
             "toolRules": [{"name": "search", "decision": "allow"}],
             "quotas": [{"limit": 2, "windowSeconds": 600, "per": "session"},
                        {"limit": 3, "windowSeconds": 600, "per": "human", "tool": "search"}]}  # fmt: skip
    r = await c.post("/api/runtime/grants", json=grant, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert env.policy()["grants"][0]["quotas"][0] == {"limit": 2, "windowSeconds": 600, "per": "session"}
    tokens = []
    for agent in ("bot-1", "bot-2"):
        minted = await mint(env, await session_for(env, agent=agent), env.member)
        assert minted.status_code == 200, minted.text
        tokens.append(minted.json()["access_token"])

    call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "search", "arguments": {"query": "roadmap"}}})  # fmt: skip
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with platform_gateway(env, tmp_path / "sidecar.log") as url, httpx2.AsyncClient(timeout=10) as h:

        async def search(token: str) -> httpx2.Response:
            return await h.post(url, content=call, headers={**headers, "Authorization": f"Bearer {token}"})

        first = [await search(tokens[0]) for _ in range(3)]
        assert [x.status_code for x in first] == [200, 200, 429], first[-1].text
        assert first[-1].json()["error"]["data"]["reason"] == "quota_exceeded"
        assert 1 <= int(first[-1].headers["Retry-After"]) <= 600
        # The second session has its own 2, but the person's third search is the per-human limit.
        second = [await search(tokens[1]) for _ in range(2)]
        assert [x.status_code for x in second] == [200, 429], second[-1].text
