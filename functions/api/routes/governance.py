"""`/api/runtime/grants[...]`: MCPAccessGrant CRUD with the §7.8 scope rules; each change re-renders the policy.

Deliberate differences from upstream: an all-empty subject is rejected (§11.1, it would match
nobody), and `allowedSideEffects` must be non-empty (§11.11, an empty list denies every call).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from functions.api.deps import AnyPrincipal, Kube, kcall
from functions.api.errors import ApiError, bad_request, not_found
from functions.api.grant_approval import ApprovalIn, check_approval
from functions.api.grant_quotas import MAX_QUOTAS, QuotaIn, check_quotas
from functions.api.models import (
    NON_BLANK,
    Effect,
    Loose,
    Name,
    NamePath,
    NamespaceField,
    NamespaceFilter,
    NamespacePath,
    TrustOrEmpty,
)
from functions.api.services.access import (
    ServerRefIn,
    SubjectIn,
    access_identity,
    default_team,
    load_owned,
    replaced_server,
    server_of,
    subject_of,
    target_server,
    upsert,
    visible,
)
from functions.api.services.scope import (
    SIDE_EFFECTS,
    age,
    audit,
    check_name,
    check_trust,
    compact,
    sync_policy,
    write_namespace,
)
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.kube.resources import SentinelKube

router = APIRouter(prefix="/api/runtime", tags=["governance"])
MAX_ITEMS = 100
Str = Field(default="", max_length=253)


RuleName = Annotated[str, Field(min_length=1, max_length=253, pattern=NON_BLANK)]


class ToolRuleIn(Loose):
    """A per-tool decision (names unique within a list: 400 on a duplicate)."""

    name: RuleName
    decision: Literal["allow", "deny"]
    requiredTrust: TrustOrEmpty = ""


Rules = Annotated[list[ToolRuleIn], Field(default_factory=list, max_length=MAX_ITEMS)]


class GrantIn(Loose):
    """Create-or-update body of a grant."""

    name: Name
    namespace: NamespaceField = ""
    serverRef: ServerRefIn
    subject: SubjectIn
    maxTrust: TrustOrEmpty = ""
    # §11.11: an empty list would deny every call, so at least one effect.
    allowedSideEffects: list[Effect] = Field(min_length=1, max_length=3, json_schema_extra={"uniqueItems": True})
    policyVersion: str = Field(default="", max_length=64)
    disabled: bool | None = None
    toolRules: Rules
    # The same rules for the server's prompts and resources (by inventory name).
    promptRules: Rules
    resourceRules: Rules
    quotas: list[QuotaIn] = Field(default_factory=list, max_length=MAX_QUOTAS, json_schema_extra={"uniqueItems": True})
    approval: ApprovalIn | None = None


class DisabledPatch(Loose):
    """PATCH body of a grant."""

    disabled: bool


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
        **compact({"quotas": list(spec.get("quotas") or [])}),
        **compact({"approval": spec.get("approval") or {}}),
        "disabled": spec.get("disabled") is True,
        "age": age(obj),
    }


def check_rules(key: str, given: list[ToolRuleIn]) -> list[dict[str, str]]:
    """Validated `toolRules`/`promptRules`/`resourceRules` entries (400 naming the first bad one)."""
    rules: list[dict[str, str]] = []
    for i, rule in enumerate(given):
        rname = rule.name  # non-blank and trimmed by the schema
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


@router.get("/grants")
async def list_grants(kube: Kube, p: AnyPrincipal, namespace: NamespaceFilter = None) -> dict[str, Any]:
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
    quotas = check_quotas(body.quotas)
    if quotas:
        spec["quotas"] = quotas
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
async def get_grant(namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal) -> dict[str, Any]:
    """One grant."""
    return {"grant": grant_summary(await load_owned(kube, p, kube.grants, namespace, name))}


async def _set_disabled(
    request: Request, kube: SentinelKube, p: Principal, namespace: NamespacePath, name: NamePath, disabled: bool
) -> dict[str, Any]:
    obj = await load_owned(kube, p, kube.grants, namespace, name)
    await kcall(kube.grants.patch, namespace, name, {"spec": {"disabled": disabled}})
    policy = await sync_policy(request, kube, namespace, server_of(obj))
    await audit(request, p, "grant_disable" if disabled else "grant_enable", f"grant/{namespace}/{name}", namespace)
    return {"success": True, "name": name, "namespace": namespace, "disabled": disabled, "policy": policy}


@router.patch("/grants/{namespace}/{name}")
async def patch_grant(
    request: Request, namespace: NamespacePath, name: NamePath, body: DisabledPatch, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """`{"disabled": bool}`: the kill switch."""
    return await _set_disabled(request, kube, p, namespace, name, body.disabled)


@router.post("/grants/{namespace}/{name}/disable")
async def disable_grant(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Legacy form of PATCH `{"disabled": true}`."""
    return await _set_disabled(request, kube, p, namespace, name, True)


@router.post("/grants/{namespace}/{name}/enable")
async def enable_grant(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
    """Legacy form of PATCH `{"disabled": false}`."""
    return await _set_disabled(request, kube, p, namespace, name, False)


@router.delete("/grants/{namespace}/{name}")
async def delete_grant(
    request: Request, namespace: NamespacePath, name: NamePath, kube: Kube, p: AnyPrincipal
) -> dict[str, Any]:
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

