"""Who is calling: the four identity modes of the policy's `auth.mode` (steps 2-3 of the pipeline).

* `header` (the default): the trusted in-cluster adapter's identity headers; a repeated one is
  ambiguous and refused (`AmbiguousIdentity`).
* `oauth`: a bearer JWT from the policy's issuer, audience-bound to this server (`sidecar.oauth`).
* `platform`: the API's short-lived agent token, whose session must be live in the policy
  snapshot (`sidecar.platform_token`).
* `mtls`: the SPIFFE ID the ingress verified, never client headers (`sidecar.mtls`).

Failures raise `AuthFailure` (401/503 with a §3.4 reason); the pipeline turns them into denials.
"""

from __future__ import annotations

import time

from aiohttp import web

from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.types import Identity
from sidecar.errors import AmbiguousIdentity, AuthFailure
from sidecar.exchange import header_names
from sidecar.mtls import mtls_identity
from sidecar.oauth import bearer_from, claims_identity
from sidecar.platform_token import session_identity
from sidecar.resource import resource_url
from sidecar.state import SidecarState

TOKEN_MODES = frozenset({"oauth", "platform"})


async def identify_by_token(
    state: SidecarState, request: web.Request, policy: CompiledPolicy | None, mode: str
) -> tuple[Identity, str]:
    """`oauth` or `platform` mode: the caller's identity and the bearer token to forward ("" unless OAuth)."""
    if policy is not None and mode == "oauth":
        return await _oauth_identity(state, request, policy)
    return await _platform_identity(state, request, policy), ""


def identify_by_transport(
    state: SidecarState, request: web.Request, policy: CompiledPolicy | None, mode: str
) -> Identity:
    """`mtls` or `header` mode (synchronous: nothing to fetch, and it is the hot path)."""
    if policy is not None and mode == "mtls":
        # Identity from the ingress-verified SPIFFE ID only; client governance headers are not read.
        transport = request.transport
        return mtls_identity(
            transport.get_extra_info("peercert") if transport is not None else None,
            request.headers.getall(state.settings.verified_spiffe_header, ()),
            policy,
            state.settings.trusted_proxy_spiffe_id,
            time.time(),
        )
    h = request.headers
    names = header_names(state.settings, policy)
    for n in names:
        if len(h.getall(n, ())) > 1:
            raise AmbiguousIdentity(n)
    return Identity(
        human_id=h.get(names[0], "").strip(),
        agent_id=h.get(names[1], "").strip(),
        team_id=h.get(names[2], "").strip(),
        session_id=h.get(names[3], "").strip(),
    )


def _resource(state: SidecarState, request: web.Request, policy: CompiledPolicy | None) -> str:
    """This server's canonical resource URL for `request`, or 503 when none is configured."""
    auth = policy.doc.auth if policy is not None else None
    url = resource_url(auth.resource if auth is not None else "", state.settings.external_base_url, request.path)
    if not url:
        raise AuthFailure(
            "resource_url_unconfigured", 503,
            "this server has no canonical URL (auth.resource or EXTERNAL_BASE_URL); tokens cannot be checked",
        )  # fmt: skip
    return url


async def _oauth_identity(
    state: SidecarState, request: web.Request, policy: CompiledPolicy
) -> tuple[Identity, str]:
    auth = policy.doc.auth
    assert auth is not None  # mode "oauth" comes from it
    if not auth.issuer_url:
        raise AuthFailure("oauth_issuer_missing", 503)
    if state.oauth is None:
        raise AuthFailure("oauth_config_missing", 503)
    header = auth.token_header or "Authorization"
    token = bearer_from(header, request.headers.get(header))
    if not token:
        raise AuthFailure("missing_bearer_token", 401)
    # Audience binding: the configured audience, else this server's canonical resource URL (MCP SEC),
    # from the policy or EXTERNAL_BASE_URL and never from the request's Host.
    audience = auth.audience or _resource(state, request, policy)
    claims = await state.oauth.verify(token, issuer=auth.issuer_url, audience=audience)
    human, agent, team, sid = claims_identity(claims)
    session = sid or request.headers.get(header_names(state.settings, policy)[3], "").strip()
    return Identity(human_id=human, agent_id=agent, team_id=team, session_id=session), token


async def _platform_identity(state: SidecarState, request: web.Request, policy: CompiledPolicy | None) -> Identity:
    verifier = state.platform
    if verifier is None:
        raise AuthFailure("platform_config_missing", 503, "PLATFORM_TOKEN_ISSUER is not set on this gateway")
    resource = _resource(state, request, policy)
    token = bearer_from("Authorization", request.headers.get("Authorization"))
    if not token:
        raise AuthFailure("missing_bearer_token", 401)
    claims = await verifier.verify(token, audience=resource)
    return session_identity(claims, policy, time.time())
