"""README "Using it": the platform-token path exactly as documented, against a real sidecar process.

A user key (`x-api-key: mcpu_…`) opens an agent session, mints a token for it (`.access_token`),
and the token calls the server through its gateway with `Authorization: Bearer`; the JWKS is the
API's own route served over HTTP. A service key cannot mint (no human to bind).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest

from tests.helpers.agent_tokens import Env, platform_gateway
from tests.helpers.api import USER_SERVICE_KEY

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_shows_the_documented_calls() -> None:
    section = README[README.index("## Using it"):]
    for needle in ('"$API/api/runtime/adapter/sessions" -H "x-api-key: $KEY"', "jq -r .name",
                   '"$API/api/agent-tokens" -H "x-api-key: $KEY"', "jq -r .access_token",
                   '-H "Authorization: Bearer $TOKEN"'):
        assert needle in section, needle


@pytest.mark.timeout(180)
async def test_platform_token_path_as_the_readme_shows_it(env: Env, tmp_path: Path) -> None:
    c = env.api.client
    r = await c.post("/api/user/api-keys", json={"name": "readme"}, headers=env.member)
    assert r.status_code == 200, r.text
    key = {"x-api-key": r.json()["api_key"], "Content-Type": "application/json"}
    assert re.fullmatch(r"mcpu_\S+", key["x-api-key"])

    # 1. the session (body as in the README)
    r = await c.post("/api/runtime/adapter/sessions", headers=key,
                     content=json.dumps({"serverName": "srv", "namespace": env.ns, "agentID": "my-agent"}))
    assert r.status_code == 200, r.text
    session = r.json()["name"]
    # 2. the token; a service key cannot mint one
    body = json.dumps({"namespace": env.ns, "session": session})
    refused = await c.post("/api/agent-tokens", headers={"x-api-key": USER_SERVICE_KEY}, content=body)
    assert refused.status_code in (401, 403), refused.text
    r = await c.post("/api/agent-tokens", headers=key, content=body)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]

    # 3. the call through a real gateway that verifies offline from the API's JWKS
    call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "search", "arguments": {"query": "roadmap"}}})  # fmt: skip
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with platform_gateway(env, tmp_path / "sidecar.log") as url, httpx2.AsyncClient(timeout=10) as h:
        ok = await h.post(url, content=call, headers={**headers, "Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["result"] == {"executed": True}, ok.text
        anon = await h.post(url, content=call, headers=headers)
        assert anon.status_code == 401 and "Bearer" in anon.headers.get("WWW-Authenticate", ""), anon.text
