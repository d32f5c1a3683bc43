"""Per-process dependencies of the API, built from settings and kept on `app.state.ctx`.

Every backend is optional: a route that needs a missing one answers 503 with a clear message
(see `require_store`, `require_clickhouse`, ...), the rest of the API keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from functions.api.oidc import NonceLedger, OidcVerifier
from functions.api.settings import ApiSettings
from mcp_sentinel.identity.lockout import LoginLockout
from mcp_sentinel.identity.passwords import PasswordHasher
from mcp_sentinel.identity.store import IdentityStore, Team
from mcp_sentinel.identity.tokens import TokenIssuer


class TeamProvisioner(Protocol):
    """Creates/removes what a team needs outside the identity store (e.g. its Kubernetes namespace).

    `provision` runs after the team row exists; if it raises, the API deletes the team again.
    """

    async def provision(self, team: Team) -> None:
        """Make the team usable (idempotent)."""

    async def deprovision(self, team: Team) -> None:
        """Tear down what `provision` made (idempotent)."""


class StoreOnlyProvisioner:
    """Default provisioner: the identity store rows are all a team needs."""

    async def provision(self, team: Team) -> None:
        """Nothing beyond the store."""

    async def deprovision(self, team: Team) -> None:
        """Nothing beyond the store."""


class TemporalProvisioner:
    """Provisioning through the ProvisionTeam/DeprovisionTeam workflows (when TEMPORAL_ADDRESS is set).

    Imports the workflow client lazily so the API's cold start does not pay for it, and
    connects through the API's shared Temporal client on first use.
    """

    def __init__(self, ctx_ref: dict[str, ApiContext], wait_seconds: float = 30.0) -> None:
        self._ctx_ref = ctx_ref
        self.wait_seconds = wait_seconds

    async def _delegate(self) -> Any:
        from functions.api.routes.runtime_deps import temporal_client
        from workflows.client import TemporalTeamProvisioner

        ctx = self._ctx_ref["ctx"]
        client = await temporal_client(ctx)
        if client is None:
            raise RuntimeError(f"Temporal is not reachable at {ctx.settings.temporal_address}")
        return TemporalTeamProvisioner(client, wait_seconds=self.wait_seconds)

    async def provision(self, team: Team) -> None:
        """Run ProvisionTeam and wait for it (WorkflowTimeout carries the workflow id)."""
        await (await self._delegate()).provision(team)

    async def deprovision(self, team: Team) -> None:
        """Run DeprovisionTeam and wait for it."""
        await (await self._delegate()).deprovision(team)


@dataclass
class ApiContext:
    """Long-lived collaborators shared by all requests of one API process."""

    settings: ApiSettings
    hasher: PasswordHasher
    lockout: LoginLockout
    provisioner: TeamProvisioner
    store: IdentityStore | None = None
    tokens: TokenIssuer | None = None
    oidc: OidcVerifier | None = None
    # Nonces of ID tokens already exchanged (a captured token and nonce are single-use).
    oidc_nonces: NonceLedger = field(default_factory=NonceLedger)
    # Filled by the other areas' wiring; None means "not configured" (their routes answer 503).
    clickhouse: Any = None
    kube: Any = None
    temporal: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
