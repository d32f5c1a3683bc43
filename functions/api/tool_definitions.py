"""The live tool definitions of one server, byte-for-byte as it serves them (for pinning, issue 18).

The catalog's probe (`functions.api.inventory`) goes through the official client, whose models drop
keys they do not know (extra annotation keys, for one); a pin must hash exactly what the gateway
will hash (`mcp_sentinel.policy.tool_digest` over the raw `tools/list` entry), so this listing is
plain JSON-RPC over streamable HTTP: initialize, notifications/initialized, every `tools/list`
page, end of session. Same target and same per-server token as the catalog's probe (the sidecar's
inventory listener: unfiltered, list-only).
"""

from __future__ import annotations

import json
import ssl
from typing import Any

from functions.api.inventory import PAGE_CAP, PROBE_AGENT_ID, TOKEN_HEADER, ProbeFailed

PROTOCOL_VERSION = "2025-06-18"
MAX_ANSWER = 4 * 1024 * 1024


def _strict(raw: bytes) -> Any:
    """JSON without NaN/Infinity (a definition holding them could not be digested)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw, parse_constant=refuse)


def _messages(body: bytes, content_type: str) -> list[Any]:
    if content_type.startswith("text/event-stream"):
        out = []
        for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
            data = b"\n".join(ln[5:].removeprefix(b" ") for ln in event.split(b"\n") if ln.startswith(b"data:"))
            if data.strip():
                out.append(_strict(data))
        return out
    return [_strict(body)] if body.strip() else []


async def list_tool_definitions(
    url: str, budget: float, token: str = "", tls: ssl.SSLContext | None = None
) -> list[dict[str, Any]]:
    """Every `tools/list` entry the server at `url` serves, as sent (ProbeFailed with a safe reason)."""
    import httpx2

    headers = {"Accept": "application/json, text/event-stream", "X-MCP-Agent-ID": PROBE_AGENT_ID}
    if token:
        headers[TOKEN_HEADER] = token
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(budget), verify=tls or True) as http:

        async def rpc(method: str, params: dict[str, Any], msg_id: int | None) -> Any:
            payload: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
            if msg_id is not None:
                payload["id"] = msg_id
            resp = await http.post(url, json=payload, headers=headers)
            if resp.status_code >= 400:
                raise ProbeFailed(f"{method} failed: HTTP {resp.status_code}")
            if msg_id is None:
                return None
            if method == "initialize" and resp.headers.get("mcp-session-id"):
                headers["Mcp-Session-Id"] = resp.headers["mcp-session-id"]
            if len(resp.content) > MAX_ANSWER:
                raise ProbeFailed(f"{method} failed: answer too large")
            try:
                msgs = _messages(resp.content, resp.headers.get("content-type", "").lower())
            except (ValueError, RecursionError):
                raise ProbeFailed(f"{method} failed: the answer is not JSON") from None
            for msg in msgs:
                if isinstance(msg, dict) and msg.get("id") == msg_id:
                    if "error" in msg:
                        raise ProbeFailed(f"{method} failed: MCP error {(msg['error'] or {}).get('code')}")
                    return msg.get("result")
            raise ProbeFailed(f"{method} failed: no answer")

        try:
            await rpc("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                     "clientInfo": {"name": "mcp-sentinel-tool-pins", "version": "0.1.0"}}, 1)
            headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
            await rpc("notifications/initialized", {}, None)
            tools: list[dict[str, Any]] = []
            cursor: str | None = None
            for page in range(PAGE_CAP):
                result = await rpc("tools/list", {"cursor": cursor} if cursor else {}, 2 + page)
                if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                    raise ProbeFailed("tools/list failed: not a list result")
                tools.extend(t for t in result["tools"] if isinstance(t, dict) and isinstance(t.get("name"), str))
                nxt = result.get("nextCursor")
                if not isinstance(nxt, str) or not nxt or nxt == cursor:
                    break
                cursor = nxt
        except httpx2.TimeoutException:
            raise ProbeFailed(f"timeout: no answer within {budget:g}s") from None
        except httpx2.HTTPError:
            raise ProbeFailed("unreachable: connection failed") from None
        if "Mcp-Session-Id" in headers:
            try:
                await http.delete(url, headers=headers)
            except httpx2.HTTPError:
                pass  # the listing is complete; a failed session end changes nothing
    return tools
