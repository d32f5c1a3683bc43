"""Provisioning activities: each one idempotent (create-or-get) with a matching undo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from mcp_sentinel.kube.errors import Invalid, KubeError
from mcp_sentinel.kube.objects import Cluster, Ref, ensure


@dataclass
class TeamRecord:
    """A team as the identity store knows it; `created` is True when this call inserted it."""

    id: str
    slug: str
    name: str
    namespace: str
    created: bool = False


@dataclass
class EnsureTeam:
    """Create-or-get the team record for a slug."""

    slug: str
    name: str
    created_by: str
    namespace: str


@dataclass
class Membership:
    """One user's role in one team."""

    team_id: str
    user_id: str
    role: str = "owner"


@dataclass
class ApplyObject:
    """Create-or-get one Kubernetes object."""

    manifest: dict[str, Any] = field(default_factory=dict)


class TeamStore(Protocol):
    """What provisioning needs from the identity store (Postgres in production)."""

    async def ensure_team(self, slug: str, name: str, created_by: str, namespace: str) -> tuple[TeamRecord, bool]:
        """The live team with this slug, created if missing; the flag says whether it was created now."""

    async def delete_team(self, team_id: str) -> bool:
        """Remove a team (and its namespace rows and memberships); False when it was already gone."""

    async def ensure_membership(self, team_id: str, user_id: str, role: str) -> bool:
        """Add the membership if missing; True when it was added now."""

    async def remove_membership(self, team_id: str, user_id: str) -> bool:
        """Remove the membership; False when it was already gone."""


class TeamConflict(ValueError):
    """The slug belongs to a live team with a different display name (not ours to reuse)."""


class UnknownUser(LookupError):
    """The creator is not a user of the platform."""


class ProvisioningActivities:
    """Activities for ProvisionTeam, bound to an identity store and a cluster."""

    def __init__(self, teams: TeamStore, cluster: Cluster) -> None:
        self.teams = teams
        self.cluster = cluster

    @activity.defn(name="provisioning.ensure_team")
    async def ensure_team(self, req: EnsureTeam) -> TeamRecord:
        """Create-or-get the team record."""
        try:
            team, created = await self.teams.ensure_team(req.slug, req.name, req.created_by, req.namespace)
        except (TeamConflict, UnknownUser) as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
        team.created = created
        return team

    @activity.defn(name="provisioning.delete_team")
    async def delete_team(self, team_id: str) -> bool:
        """Undo of ensure_team."""
        return await self.teams.delete_team(team_id)

    @activity.defn(name="provisioning.apply_object")
    def apply_object(self, req: ApplyObject) -> bool:
        """Create-or-get one object; True when created by this call."""
        try:
            return ensure(self.cluster, req.manifest)
        except KubeError as exc:
            if isinstance(exc, Invalid) or exc.status == 400:  # the object itself is refused: retrying cannot help
                raise ApplicationError(str(exc), type="Invalid", non_retryable=True) from exc
            raise

    @activity.defn(name="provisioning.delete_object")
    def delete_object(self, ref: Ref) -> bool:
        """Undo of apply_object."""
        return self.cluster.delete(ref)

    @activity.defn(name="provisioning.ensure_membership")
    async def ensure_membership(self, m: Membership) -> bool:
        """Add the creator as owner."""
        try:
            return await self.teams.ensure_membership(m.team_id, m.user_id, m.role)
        except UnknownUser as exc:
            raise ApplicationError(str(exc), type="UnknownUser", non_retryable=True) from exc

    @activity.defn(name="provisioning.remove_membership")
    async def remove_membership(self, m: Membership) -> bool:
        """Undo of ensure_membership."""
        return await self.teams.remove_membership(m.team_id, m.user_id)
