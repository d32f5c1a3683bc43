"""`/api/runtime/tool-pins`: pinned tool definitions of a server (issue 18, item 2).

A pin is the digest of a tool's approved definition (`mcp_sentinel.policy.tool_digest`) in the
MCPServer's `spec.toolPins`; the gateway hides and denies a tool whose live definition no longer
matches (sidecar/pins.py). The approved definition itself is kept next to the pin, in the
annotation `mcp-sentinel.io/pinned-tool-definitions` (JSON: tool name -> definition), written in
the same update as the pin, so the dashboard can show old and new side by side.

* `GET  /api/runtime/tool-pins/{ns}/{name}`: every tool, pinned and live, with its status
  (`pinned`, `changed`, `new`, `optedOut`, `missing`); the server's observers.
* `POST .../{ns}/{name}/record`: pin every live tool that has no pin yet (what publishing does;
  a changed tool is never re-pinned by this); its administrators (owners, admins).
* `POST .../{ns}/{name}/tools/{tool}/approve {"digest"}`: pin the live definition whose digest
  the approver saw; refused (409) when the server serves something else by now.
* `POST .../{ns}/{name}/tools/{tool}/opt-out {"unpinned": bool}`: the explicit per-tool opt-out.

Every change is written to the platform audit log; the policy is re-rendered after each.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import Field

from functions.api.context import ctx_of
from functions.api.deps import AnyPrincipal, Kube, kcall
from functions.api.errors import ApiError, forbidden, not_found
from functions.api.inventory import ProbeFailed, TargetError, probe_url
from functions.api.models import NON_BLANK, Loose, NamePath, NamespacePath
from functions.api.services.inventory import prober
from functions.api.services.scope import administers, audit, check_name, observes, sync_policy, team_for
from functions.api.tool_definitions import list_tool_definitions
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal
from mcp_sentinel.kube.resources import SentinelKube
from mcp_sentinel.policy.tool_digest import is_digest, pinned_definition, tool_digest

router = APIRouter(tags=["tool-pins"])
DEFINITIONS = "mcp-sentinel.io/pinned-tool-definitions"
MAX_DEFINITIONS = 200_000  # bytes of the annotation (Kubernetes allows 256 KiB for all annotations)
_WRITE_ATTEMPTS = 5


ToolPath = Annotated[str, Path(min_length=1, max_length=253, pattern=NON_BLANK, description="Tool name")]


class ApproveIn(Loose):
    """The digest of the definition the approver was shown."""

    digest: str = Field(max_length=80, pattern=r"^sha256:[0-9a-f]{64}$")


class OptOutIn(Loose):
    """`true`: the tool is not pinned (explicitly); `false`: it is again."""

    unpinned: bool


async def _server(kube: SentinelKube, namespace: str, name: str, p: Principal) -> dict[str, Any]:
    """The MCPServer, after the namespace check: outside the caller's teams the answer is the same
    403 whether the server exists or not (tests/api/tenancy_matrix.yaml, ghost rows)."""
    check_name("namespace", namespace, label=True)
    check_name("name", name)
    if not p.is_admin and (namespace == SHARED_NAMESPACE or team_for(p, namespace) is None):
        raise forbidden("forbidden namespace")
    try:
        return await kcall(kube.servers.get, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise not_found(f"MCPServer {namespace}/{name} not found") from None
        raise


def _definitions(obj: dict[str, Any]) -> dict[str, Any]:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(DEFINITIONS)
    try:
        value = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _live(request: Request, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The server's live tool entries, listed now (502 with a safe reason when it cannot be)."""
    p = prober(ctx_of(request))
    m = obj.get("metadata") or {}
    try:
        url = probe_url(p.template, obj)
        token = p.signer.mint(str(m.get("namespace")), str(m.get("name"))) if p.signer is not None else ""
        return await list_tool_definitions(url, p.timeout, token, p.tls)
    except (ProbeFailed, TargetError) as exc:
        raise ApiError(502, "live_inventory_unavailable", f"cannot list the server's tools: {exc}") from None


def _status(name: str, pin: str | None, live: str | None, unpinned: set[str]) -> str:
    if name in unpinned:
        return "optedOut"
    if live is None:
        return "missing"
    if pin is None:
        return "new"
    return "pinned" if pin == live else "changed"


async def _update(
    kube: SentinelKube, namespace: str, name: str, p: Principal, change: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply `change(spec, definitions)` to the current server and write it back (optimistic
    concurrency: a conflicting write is retried on the fresh object). Returns (before, after)."""
    for _ in range(_WRITE_ATTEMPTS):
        before = await _server(kube, namespace, name, p)
        spec = dict(before.get("spec") or {})
        meta = dict(before.get("metadata") or {})
        definitions = _definitions(before)
        change(spec, definitions)
        text = json.dumps(definitions, sort_keys=True, separators=(",", ":"))
        if len(text.encode()) > MAX_DEFINITIONS:
            raise ApiError(413, "payload_too_large", "the pinned tool definitions would exceed the annotation limit")
        meta["annotations"] = {**(meta.get("annotations") or {}), DEFINITIONS: text}
        try:
            after = await kcall(kube.servers.replace, namespace, name, {**before, "metadata": meta, "spec": spec})
        except ApiError as exc:
            if exc.status == 409:
                continue
            raise
        return before, after
    raise ApiError(409, "conflict", f"MCPServer {namespace}/{name} kept changing; try again")


@router.get("/api/runtime/tool-pins/{namespace}/{name}")
async def get_pins(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Pinned and live definitions of every tool of one server, side by side."""
    obj = await _server(kube, namespace, name, p)
    if not observes(p, namespace, obj):
        raise forbidden("forbidden server")
    spec = obj.get("spec") or {}
    pins: dict[str, str] = dict(spec.get("toolPins") or {})
    unpinned = set(spec.get("unpinnedTools") or [])
    definitions = _definitions(obj)
    live_error = ""
    live: dict[str, dict[str, Any]] = {}
    try:
        live = {t["name"]: pinned_definition(t) for t in await _live(request, obj)}
    except ApiError as exc:
        live_error = exc.message
    tools = []
    for tool in sorted({*pins, *live, *unpinned}):
        current = live.get(tool)
        digest = tool_digest(current) if current is not None else None
        tools.append({
            "name": tool,
            "status": _status(tool, pins.get(tool), digest, unpinned) if not live_error else "unknown",
            "pinnedDigest": pins.get(tool), "liveDigest": digest,
            "pinned": definitions.get(tool), "live": current,
        })  # fmt: skip
    out: dict[str, Any] = {"namespace": namespace, "name": name, "active": bool(pins),
                           "unpinnedTools": sorted(unpinned), "tools": tools,
                           "canApprove": administers(p, namespace, obj)}  # fmt: skip
    if live_error:
        out["liveError"] = live_error
    return out


@router.post("/api/runtime/tool-pins/{namespace}/{name}/record")
async def record_pins(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Pin every live tool without a pin (publishing); changed tools keep their old pin (approve them)."""
    obj = await _server(kube, namespace, name, p)
    if not administers(p, namespace, obj):
        raise forbidden("forbidden server")
    live = {t["name"]: t for t in await _live(request, obj)}
    added: list[str] = []

    def change(spec: dict[str, Any], definitions: dict[str, Any]) -> None:
        pins = dict(spec.get("toolPins") or {})
        unpinned = set(spec.get("unpinnedTools") or [])
        added.clear()
        for tool, entry in sorted(live.items()):
            if tool not in pins and tool not in unpinned:
                pins[tool] = tool_digest(entry)
                definitions[tool] = pinned_definition(entry)
                added.append(tool)
        spec["toolPins"] = pins

    await _update(kube, namespace, name, p, change)
    policy = await sync_policy(request, kube, namespace, name)
    await audit(request, p, "tool_pins_record", f"server/{namespace}/{name}", namespace,
                f"pinned {len(added)} tool(s): {', '.join(added)}"[:1000])  # fmt: skip
    return {"pinned": added, "policy": policy}


@router.post("/api/runtime/tool-pins/{namespace}/{name}/tools/{tool}/approve")
async def approve_tool(
    request: Request, namespace: NamespacePath, name: NamePath, tool: ToolPath, body: ApproveIn, kube: Kube,
    p: AnyPrincipal,
) -> dict[str, Any]:
    """Pin the live definition of `tool`, if it is still the one whose digest the approver saw."""
    if not is_digest(body.digest):
        raise ApiError(400, "bad_request", 'digest must be "sha256:" and 64 lowercase hex digits')
    obj = await _server(kube, namespace, name, p)
    if not administers(p, namespace, obj):
        raise forbidden("forbidden server")
    entry = next((t for t in await _live(request, obj) if t["name"] == tool), None)
    if entry is None:
        raise not_found(f"the server does not serve a tool named {tool!r}")
    live = tool_digest(entry)
    if live != body.digest:
        raise ApiError(409, "definition_changed",
                       f"the server now serves another definition of {tool!r} ({live}); review it again")
    old: list[str | None] = [None]

    def change(spec: dict[str, Any], definitions: dict[str, Any]) -> None:
        pins = dict(spec.get("toolPins") or {})
        old[0] = pins.get(tool)
        pins[tool] = live
        spec["toolPins"] = pins
        definitions[tool] = pinned_definition(entry)

    await _update(kube, namespace, name, p, change)
    policy = await sync_policy(request, kube, namespace, name)
    await audit(request, p, "tool_pin_approve", f"server/{namespace}/{name}/tool/{tool}", namespace,
                f"{old[0] or 'unpinned'} -> {live}")  # fmt: skip
    return {"tool": tool, "digest": live, "previous": old[0], "policy": policy}


@router.post("/api/runtime/tool-pins/{namespace}/{name}/tools/{tool}/opt-out")
async def opt_out(
    request: Request, namespace: NamespacePath, name: NamePath, tool: ToolPath, body: OptOutIn, kube: Kube,
    p: AnyPrincipal,
) -> dict[str, Any]:
    """Explicitly exempt `tool` from pinning (or end the exemption)."""
    if not tool.strip() or len(tool) > 253:
        raise ApiError(400, "bad_request", "tool name must be 1-253 characters")
    obj = await _server(kube, namespace, name, p)
    if not administers(p, namespace, obj):
        raise forbidden("forbidden server")

    def change(spec: dict[str, Any], _definitions: dict[str, Any]) -> None:
        unpinned = set(spec.get("unpinnedTools") or [])
        if body.unpinned:
            unpinned.add(tool)
        else:
            unpinned.discard(tool)
        spec["unpinnedTools"] = sorted(unpinned)

    await _update(kube, namespace, name, p, change)
    policy = await sync_policy(request, kube, namespace, name)
    action = "tool_pin_opt_out" if body.unpinned else "tool_pin_opt_in"
    await audit(request, p, action, f"server/{namespace}/{name}/tool/{tool}", namespace)
    return {"tool": tool, "unpinned": body.unpinned, "policy": policy}
