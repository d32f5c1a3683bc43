"""`/api/runtime/grants[...]`: MCPAccessGrant CRUD with the §7.8 scope rules; each change re-renders the policy.

Deliberate differences from upstream: an all-empty subject is rejected (§11.1, it would match
nobody), and `allowedSideEffects` must be non-empty (§11.11, an empty list denies every call).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from functions.api.auth import AnyPrincipal, ctx_of
from functions.api.errors import ApiError, bad_request, forbidden, not_found
from functions.api.grant_approval import ApprovalIn, check_approval
from functions.api.routes.governance_scope import (
    SIDE_EFFECTS,
    administers,
    age,
    audit,
    check_name,
    check_team_id,
    check_trust,
    compact,
    meta,
    read_namespaces,
    servers_by_name,
    sync_policy,
    team_for,
    unknown_server,
    write_namespace,
)
from functions.api.routes.runtime_deps import Kube, kcall
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.kube.resources import CustomResources, SentinelKube

router = APIRouter(prefix="/api/runtime", tags=["governance"])
MAX_ITEMS = 100
Str = Field(default="", max_length=253)


class Loose(BaseModel):
    """Unknown keys are ignored (clients send whole objects back)."""

    model_config = ConfigDict(extra="ignore")


class ServerRefIn(Loose):
    """Which MCPServer an access resource targets."""

    name: str = Str
    namespace: str = Str


class SubjectIn(Loose):
    """Who: every non-empty field must match the caller exactly."""

    humanID: str = Str
    agentID: str = Str
    teamID: str = Field(default="", max_length=256)


class ToolRuleIn(Loose):
    """A per-tool decision."""

    name: str = Str
    decision: str = Field(default="", max_length=16)
    requiredTrust: str = Field(default="", max_length=16)


class GrantIn(Loose):
    """Create-or-update body of a grant."""

    name: str = Str
    namespace: str = Str
    serverRef: ServerRefIn = ServerRefIn()
    subject: SubjectIn = SubjectIn()
    maxTrust: str = Field(default="", max_length=16)
    allowedSideEffects: list[str] = Field(default_factory=list, max_length=3)
    policyVersion: str = Field(default="", max_length=64)
    disabled: bool | None = None
    toolRules: list[ToolRuleIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    # The same rules for the server's prompts and resources (by inventory name).
    promptRules: list[ToolRuleIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    resourceRules: list[ToolRuleIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    approval: ApprovalIn | None = None


class DisabledPatch(Loose):
    """PATCH body of a grant."""

    disabled: bool | None = None


def access_identity(obj: dict[str, Any]) -> dict[str, Any]:
    """What grants and sessions summarise alike: name, namespace, serverRef and subject."""
    name, ns = meta(obj)
    spec = obj.get("spec") or {}
    ref = spec.get("serverRef") or {}
    return {
        "name": name,
        "namespace": ns,
        "serverRef": compact({"name": ref.get("name", ""), "namespace": ref.get("namespace", "")}),
        "subject": compact({k: (spec.get("subject") or {}).get(k, "") for k in ("humanID", "agentID", "teamID")}),
    }


def grant_summary(obj: dict[str, Any]) -> dict[str, Any]:
    """GrantSummary of §7.8 (plus `policyVersion` and `toolRules`, which the UI edits)."""
    spec = obj.get("spec") or {}
    return {
        **access_identity(obj),
        "maxTrust": spec.get("maxTrust") or "low",
        **compact({"allowedSideEffects": list(spec.get("allowedSideEffects") or [])}),
        **compact({"policyVersion": spec.get("policyVersion", "")}),
        **compact({"toolRules": list(spec.get("toolRules") or [])}),
        **compact({"promptRules": list(spec.get("promptRules") or [])}),
        **compact({"resourceRules": list(spec.get("resourceRules") or [])}),
        **compact({"approval": spec.get("approval") or {}}),
        "disabled": spec.get("disabled") is True,
        "age": age(obj),
    }


def check_rules(key: str, given: list[ToolRuleIn]) -> list[dict[str, str]]:
    """Validated `toolRules`/`promptRules`/`resourceRules` entries (400 naming the first bad one)."""
    rules: list[dict[str, str]] = []
    for i, rule in enumerate(given):
        rname = rule.name.strip()
        if not rname:
            raise bad_request(f"{key}[{i}].name is required")
        if rname in {r["name"] for r in rules}:
            raise bad_request(f"{key}[{i}].name duplicates {rname}")
        decision = rule.decision.strip().lower()
        if decision not in ("allow", "deny"):
            raise bad_request(f"{key}[{i}].decision must be allow or deny")
        trust = check_trust(rule.requiredTrust, f"{key}[{i}].requiredTrust")
        rules.append(compact({"name": rname, "decision": decision, "requiredTrust": trust}))
    return rules


def subject_of(body: SubjectIn) -> dict[str, str]:
    """Trimmed subject; 400 unless at least one field is set (§11.1: wildcards would match nobody)."""
    subject = {"humanID": body.humanID.strip(), "agentID": body.agentID.strip(), "teamID": body.teamID.strip()}
    check_team_id(subject["teamID"])
    if not any(subject.values()):
        raise bad_request("subject needs at least one of humanID, agentID, teamID")
    return subject


async def team_of_namespace(request: Request, p: Principal, namespace: str) -> str:
    """The id of the team owning `namespace` (the caller's, or from the identity store), else ''."""
    team = team_for(p, namespace)
    if team is not None:
        return team.id
    store = ctx_of(request).store
    if store is None:
        return ""
    for row in await store.list_namespaces():
        if row.get("namespace") == namespace and row.get("team_id"):
            return str(row["team_id"])
    return ""


async def target_server(
    kube: SentinelKube, p: Principal, namespace: str, ref: ServerRefIn
) -> tuple[str, dict[str, Any]]:
    """Validate the serverRef, load the server, and check the caller administers it."""
    name = check_name("serverRef.name", ref.name.strip())
    ref_ns = ref.namespace.strip() or namespace
    if ref_ns != namespace:
        raise bad_request(f'serverRef.namespace "{ref_ns}" must match access resource namespace "{namespace}"')
    try:
        server = await kcall(kube.servers.get, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise unknown_server(name, namespace) from None
        raise
    if not administers(p, namespace, server):
        raise forbidden("forbidden server")
    return name, server


async def default_team(request: Request, p: Principal, namespace: str, server: dict[str, Any], team: str) -> str:
    """subject.teamID: explicit (cross-team delegation kept), else the server's team, else the namespace's."""
    if team:
        return team
    server_team = str((server.get("spec") or {}).get("teamID") or "").strip()
    return server_team or await team_of_namespace(request, p, namespace)


async def upsert(
    resources: CustomResources, namespace: str, name: str, spec: dict[str, Any], keep: tuple[str, ...]
) -> dict[str, Any]:
    """Create, or replace the spec of an existing object (fields in `keep` survive when omitted)."""
    for _ in range(5):
        try:
            current = await kcall(resources.get, namespace, name)
        except ApiError as exc:
            if exc.status != 404:
                raise
            try:
                return await kcall(resources.create, namespace, {"metadata": {"name": name}, "spec": spec})
            except ApiError as exc2:
                if exc2.status == 409:
                    continue  # created concurrently: update it instead
                raise
        body = copy.deepcopy(current)
        old = body.get("spec") or {}
        new_spec = dict(spec)
        for key in keep:
            if key not in new_spec and key in old:
                new_spec[key] = old[key]
        body["spec"] = new_spec
        try:
            return await kcall(resources.replace, namespace, name, body)
        except ApiError as exc:
            if exc.status == 409:
                continue  # stale resourceVersion: re-read and retry
            raise
    raise ApiError(409, "conflict", f"{namespace}/{name} kept changing; retry")


async def visible(
    kube: SentinelKube, p: Principal, resources: CustomResources, namespace: str | None
) -> list[dict[str, Any]]:
    """Objects the caller may see: all for admins, else those on servers it administers."""
    scope = read_namespaces(p, namespace)
    if scope is None:
        items: list[dict[str, Any]] = await kcall(resources.list, None)
    else:
        items = []
        for ns in scope:
            try:
                items += await kcall(resources.list, ns)
            except ApiError as exc:
                if exc.status != 404:
                    raise
    if p.is_admin:
        return items
    servers = servers_by_name([s for ns in (scope or []) for s in await _servers(kube, ns)])
    out = []
    for obj in items:
        name, ns = meta(obj)
        ref = (obj.get("spec") or {}).get("serverRef") or {}
        server = servers.get((ref.get("namespace") or ns, ref.get("name", "")))
        if server is not None and administers(p, ns, server):
            out.append(obj)
    return out


async def _servers(kube: SentinelKube, namespace: str) -> list[dict[str, Any]]:
    try:
        return await kcall(kube.servers.list, namespace)
    except ApiError as exc:
        if exc.status == 404:
            return []
        raise


async def load_owned(
    kube: SentinelKube, p: Principal, resources: CustomResources, namespace: str, name: str
) -> dict[str, Any]:
    """One object the caller administers; 404 absent, 403 not allowed.

    Grants and sessions are visible only to their servers' administrators, so whoever might not
    administer the server (outsiders, plain members) gets the same 403 for an absent object as for
    one it may not touch: the answer never tells them which names exist. Admins and the owners of
    the namespace's team (who administer every server in it) get 404.
    """
    check_name("namespace", namespace, label=True)
    check_name("name", name)
    team = team_for(p, namespace)
    if not p.is_admin and team is None:
        raise forbidden("forbidden namespace")
    try:
        obj = await kcall(resources.get, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            if p.is_admin or (team is not None and team.role == "owner"):
                raise not_found(f"{resources.kind.kind} {namespace}/{name} not found") from None
            raise forbidden("forbidden server") from None
        raise
    if not p.is_admin:
        ref = (obj.get("spec") or {}).get("serverRef") or {}
        try:
            server = await kcall(kube.servers.get, ref.get("namespace") or namespace, ref.get("name", ""))
        except ApiError as exc:
            if exc.status != 404:
                raise
            server = {}
        if not server or not administers(p, namespace, server):
            raise forbidden("forbidden server")
    return obj


def server_of(obj: dict[str, Any]) -> str:
    """The serverRef name of an access resource."""
    return str(((obj.get("spec") or {}).get("serverRef") or {}).get("name", ""))


async def replaced_server(
    kube: SentinelKube, p: Principal, resources: CustomResources, namespace: str, name: str
) -> str | None:
    """Before an apply replaces `namespace/name`: the server the existing object targets (None when new).

    Applying under an existing name rewrites that object whatever server it protected, so the
    caller must administer its *current* server too, or a member who administers one server
    could take over (or silently drop) a grant on another server of the namespace: 403 otherwise.
    """
    try:
        current = await kcall(resources.get, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    old = server_of(current)
    if p.is_admin:
        return old
    ref_ns = str(((current.get("spec") or {}).get("serverRef") or {}).get("namespace") or namespace)
    try:
        server = await kcall(kube.servers.get, ref_ns, old) if old else {}
    except ApiError as exc:
        if exc.status != 404:
            raise
        server = {}
    if not server or ref_ns != namespace or not administers(p, namespace, server):
        raise forbidden(f"{resources.kind.kind} {namespace}/{name} exists on a server the caller does not administer")
    return old


@router.get("/grants")
async def list_grants(kube: Kube, p: AnyPrincipal, namespace: str | None = None) -> dict[str, Any]:
    """Grants the caller may see (`?namespace=` narrows)."""
    items = await visible(kube, p, kube.grants, namespace)
    return {"grants": [grant_summary(g) for g in items]}


@router.post("/grants")
async def apply_grant(request: Request, body: GrantIn, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """Create or update a grant (server administrators); re-renders the server's policy."""
    ns = write_namespace(p, body.namespace)
    name = check_name("name", body.name.strip())
    subject = subject_of(body.subject)
    max_trust = check_trust(body.maxTrust, "maxTrust")
    if not body.allowedSideEffects:
        raise bad_request("allowedSideEffects needs at least one of read, write, destructive")
    effects: list[str] = []
    for i, raw in enumerate(body.allowedSideEffects):
        e = raw.strip().lower()
        if e not in SIDE_EFFECTS:
            raise bad_request(f"allowedSideEffects[{i}] must be read, write, or destructive")
        if e in effects:
            raise bad_request(f"allowedSideEffects[{i}] duplicates {e}")
        effects.append(e)
    rule_sets = {key: check_rules(key, getattr(body, key)) for key in ("toolRules", "promptRules", "resourceRules")}
    server_name, server = await target_server(kube, p, ns, body.serverRef)
    subject["teamID"] = await default_team(request, p, ns, server, subject["teamID"])
    spec: dict[str, Any] = {
        "serverRef": {"name": server_name, "namespace": ns},
        "subject": compact(subject),
        "allowedSideEffects": effects,
        "policyVersion": body.policyVersion.strip() or "v1",
    }
    if max_trust:
        spec["maxTrust"] = max_trust
    spec.update({key: rules for key, rules in rule_sets.items() if rules})
    if body.approval is not None:
        spec["approval"] = check_approval(body.approval)
    if body.disabled is not None:
        spec["disabled"] = body.disabled
    previous = await replaced_server(kube, p, kube.grants, ns, name)
    obj = await upsert(kube.grants, ns, name, spec, keep=("disabled",))
    policy = await sync_policy(request, kube, ns, server_name)
    if previous and previous != server_name:
        await sync_policy(request, kube, ns, previous)  # the grant left that server: its policy drops it
    await audit(request, p, "grant_apply", f"grant/{ns}/{name}", ns)
    return {"grant": grant_summary(obj), "policy": policy}


@router.get("/grants/{namespace}/{name}")
async def get_grant(namespace: str, name: str, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """One grant."""
    return {"grant": grant_summary(await load_owned(kube, p, kube.grants, namespace, name))}


async def _set_disabled(
    request: Request, kube: SentinelKube, p: Principal, namespace: str, name: str, disabled: bool
) -> dict[str, Any]:
    obj = await load_owned(kube, p, kube.grants, namespace, name)
    await kcall(kube.grants.patch, namespace, name, {"spec": {"disabled": disabled}})
    policy = await sync_policy(request, kube, namespace, server_of(obj))
    await audit(request, p, "grant_disable" if disabled else "grant_enable", f"grant/{namespace}/{name}", namespace)
    return {"success": True, "name": name, "namespace": namespace, "disabled": disabled, "policy": policy}


@router.patch("/grants/{namespace}/{name}")
async def patch_grant(
    request: Request, namespace: str, name: str, body: DisabledPatch, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """`{"disabled": bool}`: the kill switch."""
    if body.disabled is None:
        raise bad_request("disabled is required")
    return await _set_disabled(request, kube, p, namespace, name, body.disabled)


@router.post("/grants/{namespace}/{name}/disable")
async def disable_grant(request: Request, namespace: str, name: str, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """Legacy form of PATCH `{"disabled": true}`."""
    return await _set_disabled(request, kube, p, namespace, name, True)


@router.post("/grants/{namespace}/{name}/enable")
async def enable_grant(request: Request, namespace: str, name: str, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """Legacy form of PATCH `{"disabled": false}`."""
    return await _set_disabled(request, kube, p, namespace, name, False)


@router.delete("/grants/{namespace}/{name}")
async def delete_grant(request: Request, namespace: str, name: str, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """Delete a grant; its server's policy drops it."""
    obj = await load_owned(kube, p, kube.grants, namespace, name)
    try:
        await kcall(kube.grants.delete, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise not_found(f"MCPAccessGrant {namespace}/{name} not found") from None
        raise
    policy = await sync_policy(request, kube, namespace, server_of(obj))
    await audit(request, p, "grant_delete", f"grant/{namespace}/{name}", namespace)
    return {"success": True, "name": name, "namespace": namespace, "policy": policy}

