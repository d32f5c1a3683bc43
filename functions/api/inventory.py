"""Live inventory: what a running MCP server really serves, next to what its MCPServer declares.

The catalog (`GET /api/runtime/servers`) asks each listed server for `tools/list` (and
`prompts/list`, `resources/list` when advertised) with the official `mcp` client over streamable
HTTP. The answer must be the server's own: its governance sidecar filters `tools/list` per caller.

Where a server is asked comes from `MCP_INVENTORY_URL_TEMPLATE` (placeholders `{name}`,
`{namespace}`, `{port}`, `{gatewayPort}`, `{inventoryPort}`, `{path}`). The default goes to the
server's sidecar, on its separate inventory listener (never the public gateway port; only the API
may reach it), path `/.sentinel/inventory{path}`: list-only, unfiltered, unaudited. Every probe
carries a token signed with `MCP_INVENTORY_SIGNING_KEY_FILE` whose audience is that one server
(`mcp_sentinel.inventory_token`), so whoever runs the address a probe goes to (a team can point its
Service anywhere) captures nothing that opens another server. That is the only way in a cluster,
where a hardened pod serves its MCP server on loopback behind the sidecar. A template on `{port}`
asks the server directly (the local stack does: nothing isolates it there). `{port}` is the
MCPServer's `spec.port` (container port, CRD default 8088), `{gatewayPort}` its
`spec.gateway.port` (8091), `{inventoryPort}` its `spec.gateway.inventoryPort` (8099), and
`{path}` the MCP endpoint as the server sees it: `spec.ingressPath` without the public route's
`/<publicPathPrefix>` segment (the ingress rewrites it away), `/mcp` when unset.

Bounded work: each probe has its own deadline, at most `concurrency` probes run at once per API
process, and a result (success or failure) is kept for `cache_seconds` under the server's uid,
generation and URL, so a changed or re-created server is probed afresh. A listing request waits
for its probes at most the probe timeout (plus a little); probes still queued then are reported as
pending and keep running, so the next listing finds their result in the cache.

The `mcp` package (and its HTTP client) is imported inside the probe, never at import time: the
API's cold start must not pay for it (tests/imports/test_import_graph.py).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_sentinel.inventory_token import Signer

log = logging.getLogger(__name__)

DEFAULT_URL_TEMPLATE = "http://{name}.{namespace}.svc.cluster.local:{inventoryPort}/.sentinel/inventory{path}"
DEFAULT_PORT = 8088  # knative/crds/mcpserver.yaml: spec.port default
DEFAULT_GATEWAY_PORT = 8091  # knative/crds/mcpserver.yaml: spec.gateway.port default
DEFAULT_INVENTORY_PORT = 8099  # knative/crds/mcpserver.yaml: spec.gateway.inventoryPort default
TOKEN_HEADER = "X-Sentinel-Inventory-Token"  # sidecar/local_routes.py INVENTORY_TOKEN_HEADER
DEFAULT_PATH = "/mcp"
# Upstream's internal probe identity (§4.8); our gateways audit it like anyone else (a claimable
# header must not switch auditing off) and answer the probe on their inventory listener.
PROBE_AGENT_ID = "mcp-runtime-live-inventory"
PAGE_CAP = 20  # pages followed per list
ITEM_CAP = 1000  # items kept per list
DESCRIPTION_CAP = 1000  # characters kept per description
CACHE_CAP = 4096  # cached results kept per process
WAIT_MARGIN = 0.25  # seconds a listing waits beyond the probe timeout

_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")

UNREACHABLE = "unreachable: connection failed"
NOT_MCP = "not an MCP server: the endpoint did not answer the MCP handshake"
PENDING = "probe pending: the server has not answered yet, try again shortly"
DISABLED = "live inventory disabled (MCP_INVENTORY_URL_TEMPLATE is empty)"


def check_template(template: str) -> None:
    """Raise ValueError unless `template` builds an http(s) URL from the placeholders."""
    if not template:
        return
    try:
        url = template.format(name="n", namespace="ns", port=1, gatewayPort=2, inventoryPort=3, path="/mcp")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            "MCP_INVENTORY_URL_TEMPLATE may use only {name}, {namespace}, {port}, {gatewayPort}, {inventoryPort} "
            f"and {{path}}: {exc!r}"
        ) from None
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"MCP_INVENTORY_URL_TEMPLATE must build an http:// or https:// URL, got {template!r}")


class TargetError(ValueError):
    """The MCPServer does not name a probeable endpoint (the message is safe to show)."""


def server_path(name: str, spec: dict[str, Any]) -> str:
    """The MCP endpoint path the server itself serves (see the module docstring)."""
    ingress = str(spec.get("ingressPath") or "").strip()
    if not ingress:
        return DEFAULT_PATH
    prefix = "/" + str(spec.get("publicPathPrefix") or name).strip("/")
    if ingress.rstrip("/") == prefix:
        return "/"
    return ingress[len(prefix):] if ingress.startswith(prefix + "/") else ingress


def probe_url(template: str, obj: dict[str, Any]) -> str:
    """The URL to probe for one MCPServer object (TargetError when its fields cannot make one)."""
    m = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    name, namespace = str(m.get("name") or ""), str(m.get("namespace") or "")
    if not (_DNS_NAME.match(name) and _DNS_NAME.match(namespace)):
        raise TargetError("invalid target: name or namespace is not a DNS name")
    port = _port(spec.get("port"), DEFAULT_PORT, "spec.port")
    gateway = spec.get("gateway")
    gw = gateway if isinstance(gateway, dict) else {}
    gateway_port = _port(gw.get("port"), DEFAULT_GATEWAY_PORT, "spec.gateway.port")
    inventory_port = _port(gw.get("inventoryPort"), DEFAULT_INVENTORY_PORT, "spec.gateway.inventoryPort")
    path = server_path(name, spec)
    if not _PATH.match(path) or "/../" in path + "/" or "/./" in path + "/":
        raise TargetError("invalid target: spec.ingressPath is not a plain URL path")
    return template.format(name=name, namespace=namespace, port=port, gatewayPort=gateway_port,
                           inventoryPort=inventory_port, path=path)


def _port(value: Any, default: int, field: str) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise TargetError(f"invalid target: {field} is not a port number")
    return value


def drift(declared: Iterable[Any], live: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Tools served but not declared (`undeclared`) and declared but not served (`missing`)."""
    want = {str(t.get("name")) for t in declared if isinstance(t, dict) and t.get("name")}
    have = {str(t["name"]) for t in live}
    return {"undeclared": sorted(have - want), "missing": sorted(want - have)}


def _rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    return str(value or "")[:DESCRIPTION_CAP]


class ProbeFailed(Exception):
    """A probe that ended without an inventory; `reason` is short and safe to show to any caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or `exc` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def failure_reason(exc: BaseException, phase: str, timeout: float, http_status: int = 0) -> str:
    """Map what the client raised during `phase` ("connect" or a list method) onto a safe reason.

    `http_status` is the last HTTP error status the endpoint answered (0: none).
    """
    import httpx2
    from mcp.shared.exceptions import MCPError

    leaves = _leaves(exc)
    if any(isinstance(e, (TimeoutError, httpx2.TimeoutException)) for e in leaves):
        return f"timeout: no answer within {timeout:g}s"
    if any(isinstance(e, httpx2.ConnectError) for e in leaves):
        return UNREACHABLE
    mcp_error = next((e for e in leaves if isinstance(e, MCPError)), None)
    if phase == "connect":
        if http_status in (401, 403):
            return f"refused: the server requires credentials the probe does not have (HTTP {http_status})"
        if http_status:
            return f"{NOT_MCP} (HTTP {http_status})"
        if mcp_error is not None or any(isinstance(e, httpx2.HTTPError) for e in leaves):
            return NOT_MCP
    elif mcp_error is not None:
        # The code only: the server's message may carry anything (stack traces, secrets).
        return f"{phase} failed: MCP error {mcp_error.code}"
    if any(isinstance(e, httpx2.HTTPError) for e in leaves):
        return f"{phase} failed: the connection broke"
    log.warning("live inventory probe failed during %s", phase, exc_info=exc)
    return f"probe failed during {phase}"


async def _pages(fetch: Callable[[str | None], Awaitable[Any]], field: str) -> tuple[list[Any], bool]:
    """Every item of a paginated list (at most PAGE_CAP pages / ITEM_CAP items); whether it was cut."""
    items: list[Any] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(PAGE_CAP):
        page = await fetch(cursor)
        items.extend(getattr(page, field) or [])
        cursor = page.next_cursor
        if not cursor or cursor in seen or len(items) >= ITEM_CAP:
            break
        seen.add(cursor)
    return items[:ITEM_CAP], bool(cursor) or len(items) > ITEM_CAP


def client_tls(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext | None:
    """The probe's TLS context: verify gateways against `ca_file` (else the system CAs) and present
    the client certificate (mTLS gateways accept no handshake without one). None: defaults.

    Raises ValueError naming the files when they cannot be loaded.
    """
    if not (cert_file or ca_file):
        return None
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the inventory TLS files ({cert_file}, {key_file}, {ca_file}): {exc}") from exc
    return ctx


async def fetch_inventory(
    url: str, budget: float, token: str = "", tls: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """Probe one MCP server within `budget` seconds: its `liveInventory` object, or ProbeFailed (safe reason)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.types import Implementation

    phase = "connect"
    errors: list[int] = []  # HTTP error statuses seen, to explain a failed handshake

    async def note(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            errors.append(response.status_code)

    headers = {"X-MCP-Agent-ID": PROBE_AGENT_ID}
    if token:
        headers[TOKEN_HEADER] = token
    http = httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(budget), event_hooks={"response": [note]}, verify=tls or True
    )
    try:
        async with asyncio.timeout(budget):
            transport = streamable_http_client(url, http_client=http)
            info = Implementation(name="mcp-sentinel-live-inventory", version="0.1.0")
            async with Client(transport, mode="auto", cache=None, client_info=info) as client:
                caps = client.server_capabilities
                out: dict[str, Any] = {"tools": [], "prompts": [], "resources": []}
                cut = False
                if caps.tools is not None:
                    phase = "tools/list"
                    tools, c1 = await _pages(lambda cur: client.list_tools(cursor=cur), "tools")
                    out["tools"] = [{"name": t.name, "description": _text(t.description)} for t in tools]
                    cut |= c1
                if caps.prompts is not None:
                    phase = "prompts/list"
                    prompts, c2 = await _pages(lambda cur: client.list_prompts(cursor=cur), "prompts")
                    out["prompts"] = [{"name": p.name, "description": _text(p.description)} for p in prompts]
                    cut |= c2
                if caps.resources is not None:
                    phase = "resources/list"
                    resources, c3 = await _pages(lambda cur: client.list_resources(cursor=cur), "resources")
                    out["resources"] = [
                        {"name": r.name, "uri": str(r.uri), "description": _text(r.description)} for r in resources
                    ]
                    cut |= c3
                phase = "close"
    except Exception as exc:
        if phase != "close":
            raise ProbeFailed(failure_reason(exc, phase, budget, errors[-1] if errors else 0)) from None
        # The inventory is complete; a failure while closing the session changes nothing.
    finally:
        await http.aclose()
    out["probedAt"] = _rfc3339_now()
    if cut:
        out["truncated"] = True
    return out


@dataclass
class _Entry:
    task: asyncio.Task[dict[str, Any]]
    expires: float = float("inf")  # set when the probe ends


class InventoryProber:
    """Probes servers with a concurrency limit, a per-probe timeout and a short result cache."""

    def __init__(
        self,
        template: str,
        *,
        timeout: float = 3.0,
        concurrency: int = 8,
        cache_seconds: float = 30.0,
        signer: Signer | None = None,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.template = template
        self.signer = signer
        self.tls = tls
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._limit = asyncio.Semaphore(concurrency)
        self._cache: dict[tuple[str, ...], _Entry] = {}

    async def _probe(self, url: str, namespace: str, name: str) -> dict[str, Any]:
        async with self._limit:
            try:
                # Minted when the probe starts (it may have queued), for this server only.
                token = self.signer.mint(namespace, name) if self.signer is not None else ""
                return {"liveInventory": await fetch_inventory(url, self.timeout, token, self.tls)}
            except ProbeFailed as exc:
                return {"liveInventory": None, "liveInventoryError": exc.reason}
            except Exception:  # never let one server break the listing
                log.exception("live inventory probe of %s failed", url)
                return {"liveInventory": None, "liveInventoryError": "probe failed"}

    def _prune(self, now: float) -> None:
        for key in [k for k, e in self._cache.items() if e.task.done() and e.expires <= now]:
            del self._cache[key]
        if len(self._cache) >= CACHE_CAP:  # oldest finished results first; running probes stay referenced
            done = [k for k, e in self._cache.items() if e.task.done()]
            for key in done[: len(self._cache) - CACHE_CAP + 1]:
                del self._cache[key]

    def _start(self, obj: dict[str, Any]) -> asyncio.Task[dict[str, Any]] | dict[str, Any]:
        """The (possibly shared, possibly finished) probe task for one server, or a result at once."""
        if not self.template:
            return {"liveInventory": None, "liveInventoryError": DISABLED}
        try:
            url = probe_url(self.template, obj)
        except TargetError as exc:
            return {"liveInventory": None, "liveInventoryError": str(exc)}
        m = obj.get("metadata") or {}
        key = (str(m.get("namespace")), str(m.get("name")), str(m.get("uid", "")), str(m.get("generation", "")), url)
        now = self.clock()
        entry = self._cache.get(key)
        if entry is not None and (not entry.task.done() or entry.expires > now):
            return entry.task
        self._prune(now)
        task = asyncio.create_task(self._probe(url, key[0], key[1]), name=f"inventory {key[0]}/{key[1]}")
        new = _Entry(task)
        task.add_done_callback(lambda _t: setattr(new, "expires", self.clock() + self.cache_seconds))
        self._cache[key] = new
        return task

    async def inventories(self, objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """For each MCPServer object: `liveInventory` (+ `liveInventoryError`) and, when probed, `inventoryDrift`."""
        started = [self._start(o) for o in objs]
        pending = [t for t in started if isinstance(t, asyncio.Task) and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.timeout + WAIT_MARGIN)
        out: list[dict[str, Any]] = []
        for obj, s in zip(objs, started, strict=True):
            result: dict[str, Any]
            if not isinstance(s, asyncio.Task):
                result = s
            elif s.done() and not s.cancelled():
                result = s.result()
            else:
                result = {"liveInventory": None, "liveInventoryError": PENDING}
            live = result.get("liveInventory")
            if live is not None:
                declared = (obj.get("spec") or {}).get("tools") or []
                result = {**result, "inventoryDrift": drift(declared, live["tools"])}
            out.append(result)
        return out

    async def aclose(self) -> None:
        """Cancel probes still running (API shutdown)."""
        tasks = [e.task for e in self._cache.values() if not e.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._cache.clear()
