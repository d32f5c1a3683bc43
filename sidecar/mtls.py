"""mTLS identity (upstream §3.11): who is calling, as vouched for by the TLS-terminating ingress.

The ingress verifies the caller's client certificate and passes its SPIFFE ID in a header
(`VERIFIED_SPIFFE_HEADER`); the ingress itself connects to the sidecar with its own client
certificate (`sidecar.tls`), which is what makes that header trustworthy. The ID names a session
binding, `spiffe://<trust domain>/ns/<namespace>/session/<session>`, and the identity is that
binding's human, agent and team: governance headers a client sends are never read in this mode.

Checked in this order, each failure a 401 with its own reason: a verified client certificate on
this hop, the pinned ingress SPIFFE ID among its URI SANs (when `TRUSTED_PROXY_SPIFFE_ID` is
set), exactly one non-empty identity header, its shape and trust domain, and the binding (exists,
not revoked, not expired — by the evaluator's one expiry rule, docs/decisions/upstream.md gap 7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from mcp_sentinel.policy.evaluate import CompiledPolicy
from mcp_sentinel.policy.types import Identity
from sidecar.errors import AuthFailure
from sidecar.tls import peer_uri_sans

# Denials that carry `client_certificate_required` (upstream §4.6).
MTLS_REASONS = frozenset(
    {
        "missing_client_certificate",
        "untrusted_proxy",
        "missing_verified_identity",
        "ambiguous_spiffe_identity",
        "invalid_spiffe_identity",
        "session_not_found",
        "session_revoked",
        "session_expired",
    }
)

_GUIDANCE = {
    "missing_client_certificate": "this gateway accepts requests only over TLS with a verified client certificate "
    "(connect through the mTLS ingress)",
    "untrusted_proxy": "the client certificate on this connection is not the trusted ingress's",
    "missing_verified_identity": "no verified SPIFFE identity was passed by the ingress",
    "ambiguous_spiffe_identity": "the verified SPIFFE identity header was sent more than once",
    "invalid_spiffe_identity": "the SPIFFE identity must be spiffe://<trust domain>/ns/<namespace>/session/<session>",
    "session_not_found": "no agent session matches the SPIFFE identity",
    "session_revoked": "the agent session named by the SPIFFE identity is revoked",
    "session_expired": "the agent session named by the SPIFFE identity has expired",
}


def policy_refusal(policy: CompiledPolicy, trusted_proxy_spiffe_id: str) -> str:
    """Why this sidecar must not enforce `policy` ("" when it may).

    An mTLS-mode policy without `TRUSTED_PROXY_SPIFFE_ID` would take the identity header from any
    client certificate the CA ever signed, i.e. let every workload of the mesh claim any SPIFFE
    identity. That is refused: at start-up the process exits, at run time the reload is refused and
    the previous policy stays (counted as a failed reload, reported in /config/status).
    """
    auth = policy.doc.auth
    mode = (auth.mode.strip().lower() if auth is not None and auth.mode else "") or "header"
    if mode == "mtls" and not trusted_proxy_spiffe_id:
        return ("auth.mode mtls needs TRUSTED_PROXY_SPIFFE_ID (the SPIFFE ID of the ingress that vouches for "
                "the identity header); without it any certificate from the CA could claim any identity")
    return ""


def denial(reason: str) -> AuthFailure:
    """The 401 for an mTLS failure, with the guidance message clients see."""
    return AuthFailure(reason, 401, _GUIDANCE[reason])


def parse_spiffe(value: str, trust_domain: str) -> tuple[str, str] | None:
    """(namespace, session) of `spiffe://<trust_domain>/ns/<namespace>/session/<session>`, else None.

    Scheme and trust domain compare case-insensitively; the path has exactly four segments, the
    literals `ns` and `session` at the first and third, each percent-decoded and non-empty. No
    port, user info, query or fragment.
    """
    domain = trust_domain.strip().lower()
    if not domain or "?" in value or "#" in value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() != "spiffe" or parts.netloc.lower() != domain:
        return None
    segments = parts.path.split("/")
    if len(segments) != 5 or segments[0] != "" or segments[1] != "ns" or segments[3] != "session":
        return None
    namespace, session = unquote(segments[2]), unquote(segments[4])
    # A decoded "/" would make the coordinates ambiguous; Kubernetes names never contain one.
    if not namespace or not session or "/" in namespace or "/" in session:
        return None
    return namespace, session


def mtls_identity(
    peercert: dict[str, Any] | None,
    header_values: Sequence[str],
    policy: CompiledPolicy,
    trusted_proxy_spiffe_id: str,
    now: float,
) -> Identity:
    """The caller's identity, or `AuthFailure` (see the module docstring for the order of checks).

    `peercert` is the verified client certificate of this connection (None without TLS), and
    `header_values` every value of the verified-identity header.
    """
    if not peercert:
        raise denial("missing_client_certificate")
    if trusted_proxy_spiffe_id and trusted_proxy_spiffe_id not in peer_uri_sans(peercert):
        raise denial("untrusted_proxy")
    if len(header_values) > 1:
        raise denial("ambiguous_spiffe_identity")
    value = header_values[0].strip() if header_values else ""
    if not value:
        raise denial("missing_verified_identity")
    auth = policy.doc.auth
    parsed = parse_spiffe(value, auth.trust_domain if auth is not None else "")
    if parsed is None:
        raise denial("invalid_spiffe_identity")
    found = policy.session_binding(parsed[0], parsed[1], now)
    if found is None:
        raise denial("session_not_found")
    binding, expired = found
    if binding.revoked:
        raise denial("session_revoked")
    if expired:
        raise denial("session_expired")
    return Identity(
        human_id=binding.human_id,
        agent_id=binding.agent_id,
        team_id=binding.team_id,
        session_id=binding.name,
        session_namespace=binding.namespace,
    )
