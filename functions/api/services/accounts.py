"""Password accounts: the checks and creation shared by self-service signup and admin user creation."""

from __future__ import annotations

import ipaddress
from typing import Literal

from fastapi import Request
from pydantic import Field

from functions.api.context import ctx_of
from functions.api.errors import bad_request, forbidden
from functions.api.models import Body, Email, has_ws, strip_ws
from mcp_sentinel.identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, validate_password
from mcp_sentinel.identity.principal import Principal
from mcp_sentinel.identity.store import IdentityStore, User

MAX_EMAIL_LENGTH = 254


class Credentials(Body):
    """Email and password (no NUL: no stored account can match one, and Postgres refuses it)."""

    email: str = Field(max_length=MAX_EMAIL_LENGTH, pattern=r"^[^\x00]*$")
    password: str = Field(max_length=1024, pattern=r"^[^\x00]*$")


class SignupBody(Body):
    """Signup/user-creation body; `role` admin needs an admin caller."""

    email: Email
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
    role: Literal["user", "admin"] = "user"


def validate_email(raw: str) -> str:
    """The normalised email, or 400 with the reason (the rule `functions.api.models.Email` publishes)."""
    email = strip_ws(raw).lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or len(email) > MAX_EMAIL_LENGTH or has_ws(email):
        raise bad_request("email must look like name@domain")
    # An address literal ("[::1]", "1.2.3.4") names a host, not a mail domain.
    if "\x00" in email:  # Postgres stores no NUL; no account can have one
        raise bad_request("email must look like name@domain")
    if any(c in domain for c in ":[]"):
        raise bad_request("email domain must not be an IP address")
    try:
        ipaddress.IPv4Address(domain)
    except ValueError:
        return email
    raise bad_request("email domain must not be an IP address")


def check_new_user(email: str, role: str, caller: Principal | None) -> str:
    """The normalised email of a valid new-user request (400/403 otherwise)."""
    email = validate_email(email)
    if role == "admin" and not (caller and caller.is_admin):
        raise forbidden("creating an admin requires an admin caller")
    return email


async def create_password_user(
    request: Request, store: IdentityStore, body: SignupBody, caller: Principal | None
) -> User:
    """Shared by signup and POST /api/users: validate, hash, insert (Conflict when the email is taken)."""
    ctx = ctx_of(request)
    email = check_new_user(body.email, body.role, caller)
    problem = validate_password(body.password)
    if problem:
        raise bad_request(problem)
    return await store.create_user(email, body.role, await ctx.hasher.hash(body.password))
