"""`/api/users`: admin user management."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from functions.api.auth import audit_entry
from functions.api.deps import AdminPrincipal, Store
from functions.api.errors import ApiError, not_found
from functions.api.models import Body, Email
from functions.api.services.accounts import SignupBody, check_new_user, create_password_user
from functions.api.services.sessions import revoke_user_sessions
from mcp_sentinel.identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from mcp_sentinel.identity.store import Conflict, NotFound

router = APIRouter(prefix="/api/users", tags=["users"])


class UserPatch(Body):
    """Fields an admin may change on a user."""

    disabled: bool


class NewUser(Body):
    """An account an admin creates: with a password, or without one as an invitation."""

    email: Email
    role: Literal["user", "admin"] = "user"
    # Omitted: an invitation. The first OIDC sign-in whose provider verifies this email claims it.
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


@router.post("", status_code=201, responses={409: {}})
async def create_user(request: Request, body: NewUser, store: Store, admin: AdminPrincipal) -> dict[str, Any]:
    """Create a password user, or invite one (no password) to sign in with OIDC (admin only)."""
    try:
        if body.password is None:
            email = check_new_user(body.email, body.role, admin)
            user = await store.create_user(email, body.role, None)
        else:
            user = await create_password_user(
                request, store, SignupBody(email=body.email, password=body.password, role=body.role), admin
            )
    except Conflict:
        raise ApiError(409, "conflict", "a user with this email already exists") from None
    action = "user_create" if body.password is not None else "user_invite"
    await store.audit(
        audit_entry(request, admin, action=action, resource=f"user/{user.id}", status="success", user=None)
    )
    return {"user": user.to_json(), "invited": body.password is None}


@router.get("")
async def list_users(store: Store, _admin: AdminPrincipal) -> dict[str, Any]:
    """Every live user (admin only)."""
    return {"users": [u.to_json() for u in await store.list_users()]}


@router.patch("/{user_id}")
async def patch_user(
    request: Request, user_id: str, body: UserPatch, store: Store, admin: AdminPrincipal
) -> dict[str, Any]:
    """Disable or re-enable a user; their tokens and keys stop (or resume) working at once."""
    if admin.subject == user_id and body.disabled:
        raise ApiError(409, "conflict", "admins cannot disable themselves")
    try:
        user = await store.set_user_disabled(user_id, body.disabled)
    except NotFound:
        raise not_found("user not found") from None
    action = "user_disable" if body.disabled else "user_enable"
    await store.audit(audit_entry(request, admin, action=action, resource=f"user/{user.id}", status="success"))
    if body.disabled:  # their agents' platform tokens stop with the next policy reload
        return {"user": user.to_json(), **await revoke_user_sessions(request, user.id)}
    return {"user": user.to_json()}


@router.delete("/{user_id}")
async def delete_user(request: Request, user_id: str, store: Store, admin: AdminPrincipal) -> dict[str, Any]:
    """Soft-delete a user (admin only)."""
    if admin.subject == user_id:
        raise ApiError(409, "conflict", "admins cannot delete themselves")
    try:
        await store.delete_user(user_id)
    except NotFound:
        raise not_found("user not found") from None
    await store.audit(audit_entry(request, admin, action="user_delete", resource=f"user/{user_id}", status="success"))
    return {"success": True, "id": user_id, **await revoke_user_sessions(request, user_id)}
