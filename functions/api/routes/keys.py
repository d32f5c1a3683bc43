"""`/api/user/api-keys` and `/api/user/registry-credentials`: self-service secrets, shown once."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from functions.api.auth import audit_entry
from functions.api.deps import Store, UserPrincipal
from functions.api.errors import not_found
from functions.api.models import NON_BLANK, Body
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.identity.store import IdentityStore, KeyTable, NotFound

router = APIRouter(prefix="/api/user", tags=["user keys"])


class KeyCreate(Body):
    """A name to recognise the key by."""

    name: str = Field(min_length=1, max_length=128, pattern=NON_BLANK)


def _name(body: KeyCreate) -> str:
    return body.name  # non-blank and trimmed by the schema


async def _revoke(
    request: Request, store: IdentityStore, user: Principal, table: KeyTable, key_id: str, action: str
) -> dict[str, Any]:
    assert user.subject is not None
    try:
        key = await store.revoke_key(table, user.subject, key_id)
    except NotFound:
        raise not_found("key not found" if table == "api_keys" else "credential not found") from None
    await store.audit(audit_entry(request, user, action=action, resource=f"{table}/{key.id}", status="success"))
    return {"key": key.to_json()} if table == "api_keys" else {"credential": key.to_json()}


@router.get("/api-keys")
async def list_api_keys(store: Store, user: UserPrincipal) -> dict[str, Any]:
    """The caller's API keys (never their secrets)."""
    assert user.subject is not None
    return {"keys": [k.to_json() for k in await store.list_keys("api_keys", user.subject)]}


@router.post("/api-keys")
async def create_api_key(request: Request, body: KeyCreate, store: Store, user: UserPrincipal) -> dict[str, Any]:
    """Mint a key; the raw value appears in this response only."""
    assert user.subject is not None
    key, raw = await store.create_key("api_keys", user.subject, _name(body))
    await store.audit(
        audit_entry(request, user, action="api_key_create", resource=f"api_keys/{key.id}", status="success")
    )
    return {"key": key.to_json(), "api_key": raw, "one_time_key": raw}


@router.delete("/api-keys/{key_id}")
async def delete_api_key(request: Request, key_id: str, store: Store, user: UserPrincipal) -> dict[str, Any]:
    """Revoke a key (idempotent); it stops authenticating immediately."""
    return await _revoke(request, store, user, "api_keys", key_id, "api_key_revoke")


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(request: Request, key_id: str, store: Store, user: UserPrincipal) -> dict[str, Any]:
    """Same as DELETE."""
    return await _revoke(request, store, user, "api_keys", key_id, "api_key_revoke")


@router.get("/registry-credentials")
async def list_registry_credentials(store: Store, user: UserPrincipal) -> dict[str, Any]:
    """The caller's registry credentials."""
    assert user.subject is not None
    return {"credentials": [k.to_json() for k in await store.list_keys("registry_credentials", user.subject)]}


@router.post("/registry-credentials", status_code=201)
async def create_registry_credential(
    request: Request, body: KeyCreate, store: Store, user: UserPrincipal
) -> dict[str, Any]:
    """Mint a registry password; `username` is the caller's email."""
    assert user.subject is not None
    key, raw = await store.create_key("registry_credentials", user.subject, _name(body))
    await store.audit(
        audit_entry(
            request, user, action="registry_credential_create", resource=f"registry_credentials/{key.id}",
            status="success",
        )
    )
    return {"credential": key.to_json(), "username": user.email, "password": raw}


@router.delete("/registry-credentials/{key_id}")
async def delete_registry_credential(
    request: Request, key_id: str, store: Store, user: UserPrincipal
) -> dict[str, Any]:
    """Revoke a registry credential (idempotent)."""
    return await _revoke(request, store, user, "registry_credentials", key_id, "registry_credential_revoke")


@router.post("/registry-credentials/{key_id}/revoke")
async def revoke_registry_credential(
    request: Request, key_id: str, store: Store, user: UserPrincipal
) -> dict[str, Any]:
    """Same as DELETE."""
    return await _revoke(request, store, user, "registry_credentials", key_id, "registry_credential_revoke")
