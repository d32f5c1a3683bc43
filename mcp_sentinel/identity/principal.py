"""Who is calling: the principal every authenticated API request resolves to (§7.2 shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SHARED_NAMESPACE = "mcp-servers"
TEAM_NAMESPACE_PREFIX = "mcp-team-"


@dataclass(frozen=True)
class TeamRef:
    """A team the principal belongs to, with its role in it."""

    id: str
    slug: str
    name: str
    namespace: str | None
    role: str

    def to_json(self) -> dict[str, Any]:
        """JSON form (`{id, slug, name, namespace, role}`)."""
        return {"id": self.id, "slug": self.slug, "name": self.name, "namespace": self.namespace, "role": self.role}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user (subject set) or a service API key (no subject)."""

    role: str
    auth_type: str
    subject: str | None = None
    email: str | None = None
    namespace: str | None = None
    allowed_namespaces: tuple[str, ...] = ()
    teams: tuple[TeamRef, ...] = field(default_factory=tuple)
    api_key_id: str | None = None
    is_service: bool = False

    @property
    def is_admin(self) -> bool:
        """True for role `admin`."""
        return self.role == "admin"

    def team_role(self, team_id: str) -> str | None:
        """`owner`/`member` in that team, or None."""
        for t in self.teams:
            if t.id == team_id:
                return t.role
        return None

    @property
    def auth_identity(self) -> str:
        """Audit `auth_identity`: `api_key:<id>` or `<auth_type>:<email|subject>`."""
        if self.api_key_id:
            return f"api_key:{self.api_key_id}"
        return f"{self.auth_type}:{self.email or self.subject or 'service'}"

    def to_json(self) -> dict[str, Any]:
        """snake_case JSON, omitting empty optional fields."""
        out: dict[str, Any] = {"role": self.role, "auth_type": self.auth_type}
        if self.subject:
            out["subject"] = self.subject
        if self.email:
            out["email"] = self.email
        if self.namespace:
            out["namespace"] = self.namespace
        if self.allowed_namespaces:
            out["allowed_namespaces"] = list(self.allowed_namespaces)
        if self.teams:
            out["teams"] = [t.to_json() for t in self.teams]
        if self.api_key_id:
            out["api_key_id"] = self.api_key_id
        if self.is_service:
            out["is_service"] = True
        return out


def team_namespace(slug: str) -> str:
    """Kubernetes namespace of a team."""
    return TEAM_NAMESPACE_PREFIX + slug
