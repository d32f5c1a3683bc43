"""Pinned tool definitions at the gateway (issue 18, item 2): hide and deny tools whose definition changed.

The policy's `server.toolPins` (mcp_sentinel/policy/pins.py) says which definition of each tool was
approved. The gateway needs the *live* definition to compare, and learns it two ways:

* every `tools/list` answer it relays: each entry is hashed while the answer is filtered, so what a
  caller's model is shown is exactly what is compared (an entry whose own digest differs from its
  pin is removed from that answer, whatever was seen before);
* its own listing of the upstream (`refresh`): at start, every `PIN_REFRESH_SECONDS`, after a
  `notifications/tools/list_changed` passes through, and when a call names a tool whose live
  definition it has not seen yet (so a client that lists elsewhere or from a cache is not refused
  for nothing). A tool whose live definition is still unknown after that is denied: fail closed.

The latest observation wins per tool name: an upstream that serves different definitions to
different callers can only make a tool disappear (a mismatching observation denies it until a
matching one arrives), never make an unapproved definition callable.

Calls of a drifted tool are denied with `tool_definition_changed` (an audit event like every
decision); observe mode records it as `would_deny_reason` and lets the call through, as for every
other rule. The policy part is evaluated only after the grant check allowed the call, so the
decision's hot path costs a dict lookup when pinning is on and nothing when it is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.pins import ToolPins
from mcp_sentinel.policy.tool_digest import tool_digest
from mcp_sentinel.policy.types import Decision
from sidecar.settings import SidecarSettings

log = logging.getLogger("sidecar.pins")

PROTOCOL_VERSION = "2025-06-18"
REFRESH_AGENT_ID = "mcp-sentinel-gateway-pins"  # who the gateway's own listing says it is
LIST_CHANGED = b"notifications/tools/list_changed"
_PAGE_CAP = 20
_MIN_ON_DEMAND = 1.0  # seconds between refreshes triggered by calls of unknown tools
_TIMEOUT = 5.0


def digest_or_none(item: Mapping[str, Any]) -> str | None:
    """The digest of a listed tool entry; None when it cannot be hashed (then it matches no pin)."""
    try:
        return tool_digest(item)
    except ValueError:
        return None


class PinGuard:
    """Live tool digests of one sidecar process and the pin checks on them."""

    def __init__(self, settings: SidecarSettings, on_listing: Callable[[bool], None] | None = None) -> None:
        """`on_listing(ok)` is told the outcome of every listing of the upstream (metrics)."""
        self.settings = settings
        self._on_listing = on_listing or (lambda _ok: None)
        self.session: aiohttp.ClientSession | None = None  # the process's upstream client, set at start-up
        self.live: dict[str, str | None] = {}
        self.refreshed_at = 0.0
        self._pins: tuple[CompiledPolicy | None, ToolPins] | None = None
        self._refreshing: asyncio.Task[bool] | None = None
        self._last_on_demand = float("-inf")
        self._wake = asyncio.Event()

    def pins(self, policy: CompiledPolicy | None) -> ToolPins | None:
        """The policy's pins, compiled once per snapshot; None when pinning is off."""
        if policy is None:
            return None
        cached = self._pins
        if cached is None or cached[0] is not policy:
            cached = (policy, ToolPins.of(policy.doc))
            self._pins = cached
        return cached[1] if cached[1].active else None

    # --- tools/list answers ------------------------------------------------------------------------

    def listed_tool_ok(self, policy: CompiledPolicy | None, item: Mapping[str, Any]) -> bool:
        """Record a relayed `tools/list` entry and say whether it may be shown (its own digest matches)."""
        name = item.get("name")
        if not isinstance(name, str):
            return False
        pins = self.pins(policy)
        if pins is None or not pins.needs_check(name):
            return True
        live = digest_or_none(item)
        self.live[name] = live
        return pins.verdict(name, live) == "" or _observe(policy)

    def list_changed(self) -> None:
        """A `notifications/tools/list_changed` passed through: forget what was seen and list again."""
        self.live.clear()
        self._wake.set()

    # --- tools/call --------------------------------------------------------------------------------

    async def check_call(self, policy: CompiledPolicy | None, name: str, d: Decision) -> Decision:
        """`d` (an allowed call of tool `name`), or a denial `tool_definition_changed` when it drifted."""
        pins = self.pins(policy)
        if pins is None or not pins.needs_check(name):
            return d
        if name not in self.live and name in pins.pins:
            await self._refresh_on_demand()
        reason = pins.verdict(name, self.live.get(name))
        if not reason:
            return d
        if _observe(policy):
            d.would_deny_reason = d.would_deny_reason or reason
            return d
        d.allowed, d.status, d.reason = False, 403, reason
        return d

    async def _refresh_on_demand(self) -> None:
        now = time.monotonic()
        task = self._refreshing
        if task is None and now - self._last_on_demand < _MIN_ON_DEMAND:
            return  # listed a moment ago: an unknown tool stays unknown (and denied)
        self._last_on_demand = now
        with contextlib.suppress(Exception):
            await asyncio.shield(self._start_refresh())

    def _start_refresh(self) -> asyncio.Task[bool]:
        task = self._refreshing
        if task is None or task.done():
            task = asyncio.ensure_future(self._refresh_once())
            self._refreshing = task
        return task

    async def _refresh_once(self) -> bool:
        try:
            return await self.refresh()
        finally:
            self._refreshing = None

    # --- the gateway's own listing -----------------------------------------------------------------

    async def refresh(self) -> bool:
        """List the upstream's tools and replace the live digests with what it serves now.

        Returns False (keeping what was known) when the upstream could not be listed.
        """
        http = self.session
        if http is None:
            return False
        try:
            tools = await asyncio.wait_for(_list_tools(http, self.settings), _TIMEOUT)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, RecursionError) as exc:
            log.warning("pinned tools: listing the upstream failed: %s", exc)
            self._on_listing(False)
            return False
        self._on_listing(True)
        self.live = {t["name"]: digest_or_none(t) for t in tools if isinstance(t.get("name"), str)}
        self.refreshed_at = time.time()
        return True

    async def run(self, current: Any) -> None:
        """Background task: refresh while pinning is on (`current()` is the active policy)."""
        interval = self.settings.pin_refresh_seconds
        while True:
            try:
                if self.pins(current()) is not None:
                    await self._start_refresh()
            except Exception:  # the refresher must survive anything an upstream answers
                log.exception("pinned tools: refresh failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)


def _observe(policy: CompiledPolicy | None) -> bool:
    blk = policy.doc.policy if policy is not None else None
    return blk is not None and blk.mode.strip().lower() == "observe"


def _messages(resp_body: bytes, content_type: str) -> list[Any]:
    """JSON-RPC messages of an answer, JSON or SSE."""
    if content_type.startswith("text/event-stream"):
        out = []
        for event in resp_body.replace(b"\r\n", b"\n").split(b"\n\n"):
            data = b"\n".join(ln[5:].removeprefix(b" ") for ln in event.split(b"\n") if ln.startswith(b"data:"))
            if data.strip():
                out.append(json.loads(data))
        return out
    return [json.loads(resp_body)] if resp_body.strip() else []


async def _rpc(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], payload: dict[str, Any]
) -> tuple[Any, Mapping[str, str]]:
    async with http.post(url, json=payload, headers=headers) as resp:
        body = await resp.read()
        if resp.status >= 400:
            raise ValueError(f"{payload['method']}: HTTP {resp.status}")
        if "id" not in payload:
            return None, resp.headers
        for msg in _messages(body, resp.headers.get("Content-Type", "").lower()):
            if isinstance(msg, dict) and msg.get("id") == payload["id"]:
                if "error" in msg:
                    raise ValueError(f"{payload['method']}: JSON-RPC error")
                return msg.get("result"), resp.headers
        raise ValueError(f"{payload['method']}: no answer")


async def _list_tools(http: aiohttp.ClientSession, settings: SidecarSettings) -> list[dict[str, Any]]:
    """initialize, notifications/initialized, tools/list (every page), then end the session."""
    url = settings.upstream_url + settings.pin_refresh_path
    headers = {"Accept": "application/json, text/event-stream", settings.agent_id_header: REFRESH_AGENT_ID}
    init = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "mcp-sentinel-gateway", "version": "0.1.0"}}  # fmt: skip
    _result, resp_headers = await _rpc(http, url, headers, {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                                             "params": init})  # fmt: skip
    sid = resp_headers.get("Mcp-Session-Id", "")
    if sid:
        headers["Mcp-Session-Id"] = sid
    headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
    try:
        await _rpc(http, url, headers, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for page in range(_PAGE_CAP):
            params = {"cursor": cursor} if cursor else {}
            result, _h = await _rpc(http, url, headers, {"jsonrpc": "2.0", "id": 2 + page, "method": "tools/list",
                                                         "params": params})  # fmt: skip
            if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                raise ValueError("tools/list: not a list result")
            tools.extend(t for t in result["tools"] if isinstance(t, dict))
            nxt = result.get("nextCursor")
            if not isinstance(nxt, str) or not nxt or nxt == cursor:
                break
            cursor = nxt
        return tools
    finally:
        if sid:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.delete(url, headers=headers):
                    pass
