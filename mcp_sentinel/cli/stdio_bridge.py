"""`sentinel connect <server> --stdio`: a stdio <-> streamable-HTTP bridge for stdio-only MCP clients.

Raw JSON-RPC both ways, not the SDK's session layer: the bridge must pass on what it does not
understand (unknown methods, server-initiated requests, cancellations, batches) byte-for-meaning,
and a typed client session would answer or drop some of those itself.

* client -> server: each stdin line is POSTed with the platform token, the `Mcp-Session-Id` the
  server assigned and the negotiated `MCP-Protocol-Version` (a 2026-era message carries its own
  version in `_meta`; its `Mcp-Method` / `Mcp-Name` routing headers are added from the body).
  Requests run concurrently: a `tools/call` that elicits keeps its POST open while the client's
  answer arrives on stdin and goes out as its own POST.
* server -> client: a JSON answer, every event of an SSE answer, and the standalone GET stream
  (server-initiated messages outside any request) are written to stdout, one message a line.
* identity: refreshed before expiry by a background task, and on a 401 carrying
  `WWW-Authenticate` (the gateway refused the token: expired, key rotated, session renewed) once
  per message; if the API will not mint (session revoked, user disabled) the gateway's own 401
  error reaches the client, so it sees the reason (`session_revoked`).
* end: stdin EOF (the client quit) -> DELETE the MCP session, exit 0; the server ending the
  session (404 on it) or staying unreachable -> exit 1 with a one-line reason on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO

import httpx

from mcp_sentinel.cli.agent_identity import AgentIdentity, IdentityError

PROTOCOL_META = "io.modelcontextprotocol/protocolVersion"
NAME_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
CONNECT_ATTEMPTS = 3
# How long a call refused with `session_not_found` is retried after a refresh: the gateway learns
# a new session with its next policy reload (about a second; generous for a loaded cluster).
SESSION_SETTLE = 10.0
SETTLE_POLL = 0.25
INTERNAL_ERROR = -32603
PARSE_ERROR = -32700


def _requests(msg: Any) -> list[Any]:
    """Ids of the requests in a message or batch (the ones that expect an answer)."""
    items = msg if isinstance(msg, list) else [msg]
    return [m["id"] for m in items if isinstance(m, dict) and "method" in m and m.get("id") is not None]


def _error(msg_id: Any, code: int, message: str, **data: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": err}


async def _sse(resp: httpx.Response) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined, comments and priming events skipped)."""
    data: list[str] = []
    async for line in resp.aiter_lines():
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


class StdioBridge:
    """One client on stdio, one MCP endpoint over streamable HTTP."""

    def __init__(self, url: str, identity: AgentIdentity, http: httpx.AsyncClient, out: BinaryIO,
                 log: Callable[[str], None]) -> None:
        self.url = url
        self.identity = identity
        self.http = http
        self.out = out
        self.log = log
        self.session_id = ""
        self.protocol_version = ""
        self.closed = asyncio.Event()  # the server side ended: stop reading the client
        self.exit_code = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._listening = False

    # -- output ----------------------------------------------------------------------------------

    def write(self, message: Any) -> None:
        """One message on stdout, one line (stdio framing: no embedded newlines)."""
        self.out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    def _deliver_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self.log(f"warning: the server sent a non-JSON event, dropped: {text[:120]!r}")
            return
        result = message.get("result") if isinstance(message, dict) else None
        if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str) and not self.protocol_version:
            self.protocol_version = result["protocolVersion"]  # the initialize answer: the negotiated version
        self.write(message)

    # -- client -> server ------------------------------------------------------------------------

    def _headers(self, msg: Any, token: str) -> dict[str, str]:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json",
                   "authorization": f"Bearer {token}"}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        version = self.protocol_version
        if isinstance(msg, dict):
            raw_params = msg.get("params")
            params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
            raw_meta = params.get("_meta")
            meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
            if isinstance(meta.get(PROTOCOL_META), str):
                version = meta[PROTOCOL_META]
                method = msg.get("method")
                if isinstance(method, str):  # 2026-era routing headers mirror the body
                    headers["mcp-method"] = method
                    named = params.get(NAME_PARAM.get(method, ""))
                    if isinstance(named, str) and named.isascii() and named.isprintable():
                        headers["mcp-name"] = named
        if version and not (isinstance(msg, dict) and msg.get("method") == "initialize"):
            headers["mcp-protocol-version"] = version
        return headers

    async def send(self, msg: Any, raw: bytes) -> None:
        """POST one client message and relay whatever the server answers."""
        ids = _requests(msg)
        stale = ""
        refused: dict[str, Any] | None = None
        settle = asyncio.get_running_loop().time() + SESSION_SETTLE
        while True:
            try:
                token = await self.identity.current(self.http, force=bool(stale), stale=stale)
            except IdentityError as exc:
                self.log(f"error: no platform token: {exc}")
                for msg_id in ids:
                    if refused is not None:
                        self.write({**refused, "id": msg_id})  # the gateway's reason (e.g. session_revoked)
                    else:
                        self.write(_error(msg_id, INTERNAL_ERROR, f"sentinel connect: {exc}", reason=exc.reason))
                return
            try:
                async with self.http.stream("POST", self.url, content=raw,
                                            headers=self._headers(msg, token.access_token)) as resp:
                    if resp.status_code == 401 and "www-authenticate" in resp.headers:
                        refused = _json_object(await resp.aread())
                        if not stale:
                            stale = token.access_token  # the gateway refused the token: refresh it once, retry
                            continue
                        if _reason(refused) == "session_not_found" and asyncio.get_running_loop().time() < settle:
                            # A new or renewed session reaches the gateway with its next policy reload.
                            await asyncio.sleep(SETTLE_POLL)
                            stale = "-"  # keep the refreshed token
                            continue
                    await self._relay(msg, ids, resp)
                    return
            except httpx.TransportError as exc:
                await self._unreachable(ids, exc)
                return

    async def _relay(self, msg: Any, ids: list[Any], resp: httpx.Response) -> None:
        found = resp.headers.get("mcp-session-id")
        if found:
            self.session_id = found
        ctype = resp.headers.get("content-type", "")
        if resp.status_code == 202:
            return
        if resp.status_code < 300 and ctype.startswith("text/event-stream"):
            async for data in _sse(resp):
                self._deliver_text(data)
            return
        body = await resp.aread()
        if resp.status_code < 300:
            if body.strip():
                self._deliver_text(body.decode(errors="replace"))
            return
        answer = _json_object(body)
        if resp.status_code == 404 and self.session_id and not _is_initialize(msg):
            self.log(f"the server ended MCP session {self.session_id} (HTTP 404); closing")
            self.exit_code = 1
            self.closed.set()
        if not ids:
            self.log(f"warning: the server refused a notification or response with HTTP {resp.status_code}: "
                     f"{body[:200].decode(errors='replace')}")
            return
        for msg_id in ids:
            if answer is not None and "error" in answer:
                self.write({**answer, "jsonrpc": "2.0", "id": msg_id})  # the gateway's own reason, as sent
            else:
                self.write(_error(msg_id, INTERNAL_ERROR, f"the server answered HTTP {resp.status_code}",
                                  status=resp.status_code, body=body[:500].decode(errors="replace")))

    async def _unreachable(self, ids: list[Any], exc: Exception) -> None:
        for msg_id in ids:
            self.write(_error(msg_id, INTERNAL_ERROR, f"cannot reach {self.url}: {exc.__class__.__name__}"))
        if isinstance(exc, httpx.ConnectError) and not await self._reachable():
            self.log(f"the server at {self.url} is unreachable; closing")
            self.exit_code = 1
            self.closed.set()

    async def _reachable(self) -> bool:
        for _ in range(CONNECT_ATTEMPTS):
            try:
                await self.http.request("HEAD", self.url, timeout=5)
                return True
            except httpx.TransportError:
                await asyncio.sleep(0.5)
        return False

    # -- server -> client outside any request ----------------------------------------------------

    async def listen(self) -> None:
        """The standalone GET stream: server-initiated messages that belong to no request."""
        stale = ""
        while not self.closed.is_set():
            try:
                token = await self.identity.current(self.http, force=bool(stale), stale=stale)
                headers = {k: v for k, v in self._headers({}, token.access_token).items() if k != "content-type"}
                headers["accept"] = "text/event-stream"
                forever = httpx.Timeout(30, read=None)  # the stream idles until the server has something
                async with self.http.stream("GET", self.url, headers=headers, timeout=forever) as r:
                    if r.status_code == 401 and "www-authenticate" in r.headers and not stale:
                        stale = token.access_token
                        continue
                    if r.status_code != 200:
                        return  # 405: this server offers no standalone stream; anything else: not ours to fix
                    stale = ""
                    async for data in _sse(r):
                        self._deliver_text(data)
            except (httpx.TransportError, IdentityError) as exc:
                self.log(f"warning: standalone stream interrupted ({exc.__class__.__name__}); reconnecting")
            await asyncio.sleep(1.0)

    async def refresher(self) -> None:
        """Refresh the token shortly before it expires, so calls never race its expiry."""
        while not self.closed.is_set():
            await asyncio.sleep(self.identity.seconds_to_refresh())
            try:
                await self.identity.current(self.http)
            except IdentityError as exc:
                self.log(f"warning: token refresh failed: {exc}")
                await asyncio.sleep(5.0 if exc.reason == "api_unreachable" else 30.0)

    # -- the loop --------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, lines: asyncio.Queue[bytes | None]) -> int:
        """Relay until stdin closes (0) or the server side ends (1)."""
        self._spawn(self.refresher())
        closed = asyncio.create_task(self.closed.wait())
        try:
            while True:
                line_task = asyncio.create_task(lines.get())
                await asyncio.wait({line_task, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not line_task.done():
                    line_task.cancel()
                    break
                line = line_task.result()
                if line is None:
                    break
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    self.write(_error(None, PARSE_ERROR, "Parse error: the line is not JSON"))
                    continue
                if _is_initialize(msg):
                    await self.send(msg, line)  # later messages need the session id it assigns
                    continue
                self._spawn(self.send(msg, line))
                if isinstance(msg, dict) and msg.get("method") == "notifications/initialized" and not self._listening:
                    self._listening = True
                    self._spawn(self.listen())
        finally:
            closed.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._end_session()
        return self.exit_code

    async def _end_session(self) -> None:
        if not self.session_id or self.closed.is_set() or self.identity.token is None:
            return
        headers = {"mcp-session-id": self.session_id, "authorization": f"Bearer {self.identity.token.access_token}"}
        if self.protocol_version:
            headers["mcp-protocol-version"] = self.protocol_version
        with contextlib.suppress(httpx.HTTPError):
            await self.http.delete(self.url, headers=headers, timeout=5)


def _is_initialize(msg: Any) -> bool:
    return isinstance(msg, dict) and msg.get("method") == "initialize"


def _reason(answer: dict[str, Any] | None) -> str:
    err = (answer or {}).get("error")
    data = err.get("data") if isinstance(err, dict) else None
    return str(data.get("reason") or "") if isinstance(data, dict) else ""


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def stdin_lines(fd: int) -> asyncio.Queue[bytes | None]:
    """Lines of file descriptor `fd` on an asyncio queue (None at EOF), read by a daemon thread.

    A thread, not `connect_read_pipe`: stdin may be a file or a TTY, and a blocked read must not
    keep the process alive once the server side has ended. `os.read`, not the buffered `sys.stdin`:
    a daemon thread blocked inside a buffered reader aborts the interpreter at exit.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def pump() -> None:
        pending = b""
        while chunk := os.read(fd, 65536):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        if pending:
            loop.call_soon_threadsafe(queue.put_nowait, pending)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def run_bridge(identity: AgentIdentity, url: str, *, verify: bool | str = True) -> int:
    """Fetch the first token (failing fast with the API's reason), then relay stdin <-> `url`."""
    def log(message: str) -> None:
        print(f"sentinel connect: {message}", file=sys.stderr, flush=True)

    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), verify=verify) as http:
        try:
            token = await identity.current(http)
        except IdentityError as exc:
            log(f"error: {exc}")
            return 2
        target = url or token.resource
        if not target:
            log("error: the API named no URL for this server; pass --url")
            return 2
        log(f"bridging stdio to {target} as session {token.namespace}/{token.session} "
            f"(token refreshed before {token.expires_at_text or 'expiry'})")
        bridge = StdioBridge(target, identity, http, sys.stdout.buffer, log)
        return await bridge.run(stdin_lines(sys.stdin.fileno()))
