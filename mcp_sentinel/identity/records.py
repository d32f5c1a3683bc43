"""The identity store's records, errors and row mappers (shared by every query module of the store).

Handlers await these methods, so FastAPI's event loop never blocks on Postgres. Writes that
must be atomic (team + namespace + owner membership) share one transaction.

psycopg and its pool (about 50 ms of imports) are loaded by `open()`, not with this module: the
API names these types in its routes, and runs without Postgres when POSTGRES_DSN is unset.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from mcp_sentinel.identity import keys as keymod
from mcp_sentinel.identity.principal import SHARED_NAMESPACE, team_namespace

KeyTable = Literal["api_keys", "registry_credentials"]
_KEY_KINDS: dict[str, tuple[str, str]] = {
    # table -> (raw key prefix, id prefix)
    "api_keys": (keymod.USER_KEY_PREFIX, "uk_"),
    "registry_credentials": (keymod.REGISTRY_KEY_PREFIX, "rk_"),
}
SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")
RESERVED_NAMESPACES = frozenset(
    {
        SHARED_NAMESPACE,
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "mcp-runtime",
        "mcp-sentinel",
        "registry",
        "traefik",
    }
)
# A key's last_used_at is refreshed at most this often (keeps hot keys from writing per request).
LAST_USED_GRANULARITY = "5 minutes"


class StoreError(Exception):
    """Base class for identity-store failures callers are expected to handle."""


class StoreUnavailable(StoreError):
    """Postgres could not be reached."""


class Conflict(StoreError):
    """A unique value (email, team slug, membership) already exists."""


class NotFound(StoreError):
    """The referenced row does not exist (or is deleted)."""


class LinkRequired(StoreError):
    """An OIDC identity matches an existing account by email only; its owner must link it."""


@dataclass(frozen=True)
class User:
    """A platform user."""

    id: str
    email: str
    role: str
    created_at: datetime
    disabled: bool = False

    def to_json(self) -> dict[str, Any]:
        """JSON form used by the API."""
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "disabled": self.disabled,
        }


@dataclass(frozen=True)
class Team:
    """A team and its Kubernetes namespace."""

    id: str
    slug: str
    name: str
    namespace: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON form (`{id, slug, name, namespace, created_at}`)."""
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "namespace": self.namespace,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Membership:
    """A user's role in a team."""

    team_id: str
    team_slug: str
    team_name: str
    team_namespace: str
    user_id: str
    email: str | None
    role: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON form used by the members routes."""
        return {
            "team_id": self.team_id,
            "team_slug": self.team_slug,
            "team_name": self.team_name,
            "team_namespace": self.team_namespace,
            "user_id": self.user_id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class KeySummary:
    """A user API key or registry credential, without its secret."""

    id: str
    user_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """JSON form (`revoked_at`/`last_used_at` omitted when unset)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "revoked": self.revoked,
        }
        if self.revoked_at is not None:
            out["revoked_at"] = self.revoked_at.isoformat()
        if self.last_used_at is not None:
            out["last_used_at"] = self.last_used_at.isoformat()
        return out


@dataclass(frozen=True)
class AuditEntry:
    """One platform audit row to write."""

    action: str
    resource: str
    status: str
    user_id: str | None = None
    email: str | None = None
    namespace: str | None = None
    message: str | None = None
    actor_ip: str | None = None
    request_id: str | None = None
    source: str | None = None
    auth_identity: str | None = None
    image_ref: str | None = None
    server_name: str | None = None
    deployment_target: str | None = None


_AUDIT_COLUMNS = (
    "user_id",
    "email",
    "action",
    "resource",
    "namespace",
    "status",
    "message",
    "actor_ip",
    "request_id",
    "source",
    "auth_identity",
    "image_ref",
    "server_name",
    "deployment_target",
)


def _user(row: dict[str, Any]) -> User:
    return User(
        id=str(row["id"]),
        email=row["email"],
        role=row["role"],
        created_at=row["created_at"],
        disabled=row["disabled_at"] is not None,
    )


def _team(row: dict[str, Any]) -> Team:
    return Team(
        id=str(row["id"]),
        slug=row["slug"],
        name=row["display_name"],
        namespace=row["namespace"] or team_namespace(row["slug"]),
        created_at=row["created_at"],
    )


def _key(row: dict[str, Any]) -> KeySummary:
    return KeySummary(
        id=row["id"],
        user_id=str(row["user_id"]),
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked=row["revoked"],
        revoked_at=row["revoked_at"],
    )


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


_TEAM_SELECT = """
    SELECT t.id, t.slug, t.display_name, t.created_at, n.namespace
    FROM teams t
    LEFT JOIN namespaces n ON n.team_id = t.id AND n.deleted_at IS NULL
    WHERE t.deleted_at IS NULL
"""
_MEMBER_SELECT = """
    SELECT m.team_id, t.slug, t.display_name, n.namespace, m.user_id, u.email, m.role, m.created_at
    FROM team_memberships m
    JOIN teams t ON t.id = m.team_id AND t.deleted_at IS NULL
    JOIN users u ON u.id = m.user_id
    LEFT JOIN namespaces n ON n.team_id = t.id AND n.deleted_at IS NULL
    WHERE m.deleted_at IS NULL
"""


def _membership(row: dict[str, Any]) -> Membership:
    return Membership(
        team_id=str(row["team_id"]),
        team_slug=row["slug"],
        team_name=row["display_name"],
        team_namespace=row["namespace"] or team_namespace(row["slug"]),
        user_id=str(row["user_id"]),
        email=row["email"],
        role=row["role"],
        created_at=row["created_at"],
    )
