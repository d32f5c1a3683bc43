"""`/api/runtime/teams[...]` and `/api/runtime/namespaces`: the identity-store side of teams.

Creating a team writes the store and then calls the configured `TeamProvisioner` (the
workflows area plugs in a Temporal-backed one); a provisioning failure rolls the team back.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from functions.api.auth import audit_entry
from functions.api.context import ctx_of
from functions.api.deps import AdminPrincipal, AnyPrincipal, Store
from functions.api.errors import ApiError, bad_request, forbidden, not_found
from functions.api.models import NO_NUL, Body, Email
from functions.api.services.accounts import validate_email
from mcp_sentinel.identity.passwords import MAX_PASSWORD_LENGTH, validate_password
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, Principal
from mcp_sentinel.identity.records import SLUG_RE
from mcp_sentinel.identity.store import Conflict, IdentityStore, NotFound, Team

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/runtime", tags=["teams"])
TEAM_USER_MIN_PASSWORD = 12


class TeamCreate(Body):
    """A new team."""

    slug: str = Field(max_length=42, pattern=SLUG_RE.pattern)
    name: str = Field(default="", max_length=200, pattern=NO_NUL)


class MemberRole(Body):
    """A membership role."""

    role: Literal["owner", "member"]


class TeamUserCreate(Body):
    """A new user created straight into a team."""

    email: Email
    password: str = Field(min_length=TEAM_USER_MIN_PASSWORD, max_length=MAX_PASSWORD_LENGTH)
    role: Literal["owner", "member"] = "member"


async def _team(store: IdentityStore, ref: str, p: Principal | None = None) -> Team:
    """The team `ref` (id or slug); 404 when absent.

    With `p`, a caller who is neither admin nor member gets 403 before the lookup, for existing
    and unknown teams alike: a 404/403 difference would list other teams' slugs.
    """
    if p is not None and not p.is_admin and not any(ref in (t.id, t.slug) for t in p.teams):
        raise forbidden("not a member of this team")
    team = await store.get_team(ref)
    if team is None:
        raise not_found("team not found")
    return team


def _can_read(p: Principal, team: Team) -> bool:
    return p.is_admin or p.team_role(team.id) is not None


def _can_manage(p: Principal, team: Team) -> bool:
    return p.is_admin or p.team_role(team.id) == "owner"


@router.get("/teams")
async def list_teams(store: Store, p: AnyPrincipal) -> dict[str, Any]:
    """All teams for admins; the caller's own teams otherwise."""
    if p.is_admin:
        teams = await store.list_teams()
    elif p.subject:
        teams = await store.list_teams(member_id=p.subject)
    else:
        teams = []
    return {"teams": [t.to_json() for t in teams]}


@router.post("/teams", status_code=201)
async def create_team(request: Request, body: TeamCreate, store: Store, admin: AdminPrincipal) -> dict[str, Any]:
    """Create a team (admin only); the creator becomes owner when it is a user."""
    slug = body.slug.strip().lower()
    try:
        team = await store.create_team(slug, body.name.strip() or slug, admin.subject)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    except Conflict:
        raise ApiError(409, "conflict", f"team {slug} already exists") from None
    try:
        await ctx_of(request).provisioner.provision(team)
    except TimeoutError as exc:
        # The workflow keeps running and will finish (or compensate) on its own: keep the row and
        # tell the caller which workflow to watch rather than pretending it failed.
        await store.audit(
            audit_entry(request, admin, action="team_create", resource=f"team/{slug}", status="error",
                        message=f"still running: {exc}", namespace=team.namespace)
        )
        raise ApiError(504, "provisioning_timeout", str(exc)) from None
    except Exception as exc:
        log.exception("provisioning team %s failed; rolling back", slug)
        await store.delete_team(team.id)
        await store.audit(
            audit_entry(request, admin, action="team_create", resource=f"team/{slug}", status="error",
                        message=f"provisioning failed: {exc}", namespace=team.namespace)
        )
        raise ApiError(502, "provisioning_failed", f"provisioning team namespace failed: {exc}") from None
    await store.audit(
        audit_entry(request, admin, action="team_create", resource=f"team/{slug}", status="success",
                    namespace=team.namespace)
    )
    return {"team": team.to_json()}


@router.get("/teams/{team_ref}")
async def get_team(team_ref: str, store: Store, p: AnyPrincipal) -> dict[str, Any]:
    """One team (admins and members)."""
    team = await _team(store, team_ref, p)
    if not _can_read(p, team):
        raise forbidden("not a member of this team")
    return {"team": team.to_json()}


@router.delete("/teams/{team_ref}")
async def delete_team(request: Request, team_ref: str, store: Store, admin: AdminPrincipal) -> dict[str, Any]:
    """Delete a team and its memberships (admin only)."""
    team = await _team(store, team_ref)
    await ctx_of(request).provisioner.deprovision(team)
    await store.delete_team(team.id)
    await store.audit(
        audit_entry(request, admin, action="team_delete", resource=f"team/{team.slug}", status="success",
                    namespace=team.namespace)
    )
    return {"success": True, "team": team.slug}


@router.get("/teams/{team_ref}/members")
async def list_members(team_ref: str, store: Store, p: AnyPrincipal) -> dict[str, Any]:
    """Members of a team (admins and members)."""
    team = await _team(store, team_ref, p)
    if not _can_read(p, team):
        raise forbidden("not a member of this team")
    return {"members": [m.to_json() for m in await store.list_members(team.id)]}


@router.put("/teams/{team_ref}/members/{user_id}")
async def put_member(
    request: Request, team_ref: str, user_id: str, body: MemberRole, store: Store, p: AnyPrincipal
) -> dict[str, Any]:
    """Add a member or change a role (admins and team owners)."""
    team = await _team(store, team_ref, p)
    if not _can_manage(p, team):
        raise forbidden("team owner or admin required")
    if body.role not in ("owner", "member"):
        raise bad_request("role must be owner or member")
    try:
        membership = await store.add_member(team.id, user_id, body.role)
    except NotFound as exc:
        raise not_found(str(exc)) from None
    await store.audit(
        audit_entry(request, p, action="team_member_set", resource=f"team/{team.slug}/members/{user_id}",
                    status="success", message=f"role={body.role}", namespace=team.namespace)
    )
    return {"membership": membership.to_json()}


@router.delete("/teams/{team_ref}/members/{user_id}")
async def delete_member(
    request: Request, team_ref: str, user_id: str, store: Store, p: AnyPrincipal
) -> dict[str, Any]:
    """Remove a member (admins and team owners)."""
    team = await _team(store, team_ref, p)
    if not _can_manage(p, team):
        raise forbidden("team owner or admin required")
    try:
        await store.remove_member(team.id, user_id)
    except NotFound:
        raise not_found("membership not found") from None
    await store.audit(
        audit_entry(request, p, action="team_member_remove", resource=f"team/{team.slug}/members/{user_id}",
                    status="success", namespace=team.namespace)
    )
    return {"success": True, "team": team.slug, "userID": user_id}


@router.post("/teams/{team_ref}/users", status_code=201)
async def create_team_user(
    request: Request, team_ref: str, body: TeamUserCreate, store: Store, p: AnyPrincipal
) -> dict[str, Any]:
    """Create a user directly into a team (admins and team owners; password ≥ 12 characters)."""
    team = await _team(store, team_ref, p)
    if not _can_manage(p, team):
        raise forbidden("team owner or admin required")
    email = validate_email(body.email)
    if body.role not in ("owner", "member"):
        raise bad_request("role must be owner or member")
    problem = validate_password(body.password)
    if problem or len(body.password) < TEAM_USER_MIN_PASSWORD:
        raise bad_request(problem or f"password must be at least {TEAM_USER_MIN_PASSWORD} characters")
    try:
        user = await store.create_user(email, "user", await ctx_of(request).hasher.hash(body.password))
    except Conflict:
        raise ApiError(409, "conflict", "a user with this email already exists") from None
    membership = await store.add_member(team.id, user.id, body.role)
    await store.audit(
        audit_entry(request, p, action="user_create", resource=f"user/{user.id}", status="success",
                    namespace=team.namespace)
    )
    return {"user": user.to_json(), "membership": membership.to_json()}


def _visible_namespaces(p: Principal) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"namespace": SHARED_NAMESPACE, "scope": "shared", "is_shared": True}]
    out.extend(
        {"namespace": t.namespace, "scope": "team", "team_id": t.id, "team_slug": t.slug, "role": t.role,
         "is_shared": False}
        for t in p.teams
        if t.namespace
    )
    return out


@router.get("/namespaces")
async def list_namespaces(store: Store, p: AnyPrincipal) -> dict[str, Any]:
    """Namespaces the caller may use (admins: every managed one plus the shared catalog)."""
    if p.is_admin:
        rows = [{"namespace": SHARED_NAMESPACE, "scope": "shared", "is_shared": True}]
        rows += await store.list_namespaces()
        return {"namespaces": rows}
    return {"namespaces": _visible_namespaces(p)}


@router.get("/namespaces/{namespace}")
async def get_namespace(namespace: str, store: Store, p: AnyPrincipal) -> dict[str, Any]:
    """One namespace, if the caller may use it."""
    if p.is_admin:
        rows = [{"namespace": SHARED_NAMESPACE, "scope": "shared", "is_shared": True}]
        rows += await store.list_namespaces()
    else:
        rows = _visible_namespaces(p)
    for row in rows:
        if row["namespace"] == namespace:
            return {"namespace": row}
    if p.is_admin:
        raise not_found("namespace not found")
    raise forbidden("forbidden namespace")
