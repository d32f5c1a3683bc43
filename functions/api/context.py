"""Per-process dependencies of the API, built from settings and kept on `app.state.ctx`.

Every backend is optional: a route that needs a missing one answers 503 with a clear message
(see `require_store`, `require_clickhouse`, ...), the rest of the API keeps working.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request

from functions.api.oidc import NonceLedger, OidcVerifier
from functions.api.settings import ApiSettings
from mcp_sentinel.identity.lockout import LoginLockout
from mcp_sentinel.identity.passwords import PasswordHasher
from mcp_sentinel.identity.store import IdentityStore, Team
from mcp_sentinel.identity.tokens import TokenIssuer

if TYPE_CHECKING:  # the clients are imported where their backend is first built (functions/api/deps.py)
    from temporalio.client import Client as TemporalClient

    from mcp_sentinel.kube.resources import SentinelKube
    from mcp_sentinel.storage.queries import EventQueries


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

    def __init__(
        self, connect: Callable[[], Awaitable[TemporalClient | None]], address: str, wait_seconds: float = 30.0
    ) -> None:
        # `connect` is the API's shared client (functions.api.deps.temporal_client), passed in by
        # the app factory so this module depends on nothing above it.
        self._connect = connect
        self._address = address
        self.wait_seconds = wait_seconds

    async def _delegate(self) -> Any:
        from workflows.client import TemporalTeamProvisioner

        client = await self._connect()
        if client is None:
            raise RuntimeError(f"Temporal is not reachable at {self._address}")
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
    # Built on first use from settings (functions/api/deps.py) unless `create_app` was given them;
    # None means "not built yet": a route needing one that cannot be built answers 503.
    clickhouse: EventQueries | None = None
    kube: SentinelKube | None = None
    temporal: TemporalClient | None = None
    # One Temporal connection attempt at a time (functions.api.deps.temporal_client).
    temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Per-process caches of the route modules (live-inventory prober, token issuer, stack view).
    extras: dict[str, Any] = field(default_factory=dict)


def ctx_of(request: Request) -> ApiContext:
    """The process context built by `create_app`."""
    ctx: ApiContext = request.app.state.ctx
    return ctx
