"""Shared machinery of the access resources (grants and sessions) and the servers they target.

Everything here is what more than one route module needs: the request models of a serverRef and a
subject, validation of where a write may land, the optimistic-concurrency upsert, and the scope
filters of lists and single reads (§7.8). The route modules stay leaves that only call in here.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import Request
from pydantic import ConfigDict, Field, model_validator

from functions.api.context import ctx_of
from functions.api.deps import kcall
from functions.api.errors import ApiError, bad_request, forbidden, not_found
from functions.api.models import TRIMMED, Loose, Name, NamespaceField, TeamIdField
from functions.api.services.scope import (
    administers,
    check_name,
    check_team_id,
    compact,
    meta,
    read_namespaces,
    servers_by_name,
    team_for,
    unknown_server,
)
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.kube.resources import CustomResources, SentinelKube


class ServerRefIn(Loose):
    """Which MCPServer an access resource targets (in the resource's own namespace; 403 elsewhere)."""

    name: Name
    namespace: NamespaceField = ""


Subject = Annotated[str, Field(max_length=253, pattern=TRIMMED)]
# §11.1: a subject with no field set would match nobody; the schema says so.
AT_LEAST_ONE: list[Any] = [
    {"required": [k], "properties": {k: {"minLength": 1}}} for k in ("humanID", "agentID", "teamID")
]


class SubjectIn(Loose):
    """Who: every non-empty field must match the caller exactly; at least one is set."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"anyOf": AT_LEAST_ONE})

    humanID: Subject = ""
    agentID: Subject = ""
    teamID: TeamIdField = ""

    @model_validator(mode="after")
    def _someone(self) -> SubjectIn:
        if not (self.humanID or self.agentID or self.teamID):
            raise ValueError("subject needs at least one of humanID, agentID, teamID")
        return self


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


def subject_of(body: SubjectIn) -> dict[str, str]:
    """Trimmed subject; 400 unless at least one field is set (§11.1: wildcards would match nobody)."""
    subject = {"humanID": body.humanID, "agentID": body.agentID, "teamID": body.teamID}  # trimmed by the schema
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
    if ref_ns != namespace:  # a policy rule, not a shape: the body is well-formed
        raise forbidden(f'serverRef.namespace "{ref_ns}" must match access resource namespace "{namespace}"')
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
