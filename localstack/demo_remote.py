"""The demo's run-time registration: a server added by URL through the API, called through the front door.

What a user does with a running MCP server they want governed: register its URL (admin key), grant
a person's agent a tool, open the agent's session and mint its platform token (as that person),
then call `<front door>/<name>/mcp` with the official client. The `reconciler` part turns the
registration into a sidecar process and a front-door route; nothing is restarted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from localstack.config import StackConfig

NAME = "remote-demo"
AGENT = "remote-demo-agent"
USER = ("test@mcpruntime.org", "test@123")


def _register(cfg: StackConfig) -> tuple[dict[str, str], float]:
    """Register the server, grant the demo user `search`, mint a token: (auth header, registration time)."""
    import httpx2

    admin = {"x-api-key": cfg.admin_api_key}
    ns = cfg.namespace
    with httpx2.Client(base_url=cfg.url("api"), timeout=30) as api:
        login = api.post("/api/auth/login", json={"email": USER[0], "password": USER[1]})
        login.raise_for_status()
        user = {"Authorization": f"Bearer {login.json()['access_token']}"}
        human = login.json()["user"]["id"]
        registered = time.monotonic()
        api.post("/api/runtime/servers", headers=admin, json={
            "name": NAME, "scope": "public", "update": True,
            "description": "The sample server again, registered by URL at run time",
            "gateway": {"upstreamURL": cfg.url("sample_mcp")}, "session": {"required": True},
            "tools": [{"name": "search", "sideEffect": "read"},
                      {"name": "delete_document", "sideEffect": "destructive", "requiredTrust": "high"}],
        }).raise_for_status()  # fmt: skip
        api.post("/api/runtime/grants", headers=admin, json={
            "name": f"{NAME}-test-user", "namespace": ns, "serverRef": {"name": NAME},
            "subject": {"humanID": human, "agentID": AGENT}, "maxTrust": "low", "allowedSideEffects": ["read"],
            "toolRules": [{"name": "search", "decision": "allow"}],
        }).raise_for_status()  # fmt: skip
        session = api.post("/api/runtime/adapter/sessions", headers=user,
                           json={"serverName": NAME, "namespace": ns, "agentID": AGENT})  # fmt: skip
        session.raise_for_status()
        token = api.post("/api/agent-tokens", headers=user, json={"namespace": ns, "session": session.json()["name"]})
        token.raise_for_status()
        return {"Authorization": f"Bearer {token.json()['access_token']}"}, registered


async def _call(url: str, headers: dict[str, str], deadline: float) -> str:
    """Call `search` through the front door, retrying while the route and sidecar come up."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    last: BaseException | None = None
    while time.monotonic() < deadline:
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(20.0))
        try:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                result = await client.call_tool("search", {"query": "roadmap"})
                tools = [t.name for t in (await client.list_tools()).tools]
                text = " ".join(getattr(c, "text", "") for c in result.content)[:50]
                return f"allowed (visible tools: {', '.join(tools)}) -> {text!r}"
        except Exception as exc:  # not routed yet: the reconciler is starting its sidecar
            last = exc
            await asyncio.sleep(0.2)
        finally:
            await http.aclose()
    return f"not reachable: {last!r}"[:160]


def _ready_condition(cfg: StackConfig) -> str:
    import httpx2

    with httpx2.Client(base_url=cfg.url("api"), timeout=30) as api:
        got = api.get(f"/api/runtime/servers/{cfg.namespace}/{NAME}", params={"live": "false"},
                      headers={"x-api-key": cfg.admin_api_key})  # fmt: skip
    status: dict[str, Any] = {}
    if got.is_success:
        status = (got.json().get("server") or {}).get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    return f"Ready={ready.get('status', '?')} ({ready.get('reason', 'no status yet')}) url={status.get('url', '')}"


def run_remote_demo(cfg: StackConfig, echo: Callable[[str], None]) -> None:
    """Register the sample server by URL, call it through the front door, print how long it took."""
    url = cfg.url("front_door", f"/{NAME}/mcp")
    echo("")
    echo(f"demo: registering {NAME} by URL ({cfg.url('sample_mcp')}) through the API, no restart")
    try:
        headers, registered = _register(cfg)
    except Exception as exc:
        echo(f"  registration failed: {exc!r}"[:200])
        return
    outcome = asyncio.run(_call(url, headers, time.monotonic() + 30))
    echo(f"  test user -> {NAME}.search via {url}: {outcome}")
    echo(f"  {time.monotonic() - registered:.1f} s after registration; status: {_ready_condition(cfg)}")
