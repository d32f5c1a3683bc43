"""`POST /api/runtime/adapter/sessions`: how an agent obtains a session for its human (§7.8).

Deliberate differences from upstream:
* §11.9: a grant without `maxTrust` caps the consented trust at `low`, exactly what the renderer
  renders, instead of "no cap" (which minted trust the sidecar then silently ignored).
* A session an administrator revoked is never silently revived: asking again answers 403
  `session_revoked` until an administrator unrevokes or deletes it (upstream re-minted it).
* Session names are random (`adapter-` + 64 random bits), never derived from the identity:
  upstream named them by a hash of human/agent/team/server, so anyone could compute the session
  header of a victim. The caller's existing session is found by its spec, not by its name.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from functions.api.deps import Kube, UserPrincipal, kcall
from functions.api.errors import ApiError, bad_request, forbidden, not_found
from functions.api.models import NO_WHITESPACE, Loose, Name, NamespaceField, TrustOrEmpty, has_ws
from functions.api.services.access import upsert
from functions.api.services.scope import (
    TRUST,
    audit,
    check_name,
    check_trust,
    meta,
    sync_policy,
    team_for,
    team_namespaces,
)
from functions.api.services.sessions import notify_expiry
from mcp_sentinel.identity.principal import Principal

router = APIRouter(prefix="/api/runtime/adapter", tags=["governance"])
DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(hours=24)
REUSE_MARGIN = timedelta(seconds=30)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
# The same grammar for the schema; a nonzero digit somewhere, since the sum must be positive.
TTL_PATTERN = r"^$|^(?=[^1-9]*[1-9])([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class AdapterSessionIn(Loose):
    """What the agent asks for."""

    serverName: Name
    # Empty: the caller's first team namespace (403 when it has none).
    namespace: NamespaceField = ""
    agentID: str = Field(min_length=1, max_length=253, pattern=NO_WHITESPACE)
    requestedTrust: TrustOrEmpty = ""
    # A Go duration (`90s`, `1h30m`) above zero, or empty for the default.
    requestedTTL: str = Field(default="", max_length=32, pattern=TTL_PATTERN)


def parse_duration(raw: str) -> timedelta:
    """A Go duration (`90s`, `1h30m`); > 0 and clamped to 24 h; 400 otherwise."""
    text = raw.strip()
    if not text:
        return DEFAULT_TTL
    pos, seconds = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise bad_request("requestedTTL must be a duration such as 30m or 1h")
    if seconds <= 0:
        raise bad_request("requestedTTL must be positive")
    return timedelta(seconds=min(seconds, MAX_TTL.total_seconds()))  # clamp first: 1e30 h overflows timedelta


def new_session_name() -> str:
    """`adapter-` + 16 hex chars from the OS CSPRNG: nothing about the identity can predict it."""
    return f"adapter-{secrets.token_hex(8)}"


def _same_binding(obj: dict[str, Any], ns: str, server: str, human: str, agent: str, team: str) -> bool:
    """Whether a session object is the adapter session of this human/agent/team on this server."""
    if not meta(obj)[0].startswith("adapter-"):
        return False
    spec = obj.get("spec") or {}
    ref = spec.get("serverRef") or {}
    subject = spec.get("subject") or {}
    return (
        ref.get("name") == server
        and (ref.get("namespace") or ns) == ns
        and str(subject.get("humanID") or "") == human
        and str(subject.get("agentID") or "") == agent
        and str(subject.get("teamID") or "") == team
    )


def _rank(trust: str) -> int:
    return TRUST.index(trust) + 1 if trust in TRUST else 1


def _matches(p: Principal, human: str, agent: str, grant: dict[str, Any], *, member: bool) -> bool:
    """Whether `grant` covers this caller; outside the namespace's team only a grant that names the
    caller (its human id, or one of its teams: delegation) does, never an agent-only grant."""
    spec = grant.get("spec") or {}
    if spec.get("disabled") is True:
        return False
    subject = spec.get("subject") or {}
    g_human, g_agent = str(subject.get("humanID") or ""), str(subject.get("agentID") or "")
    g_team = str(subject.get("teamID") or "")
    if g_human and g_human != human:
        return False
    if g_agent and g_agent != agent:
        return False
    mine = g_team in {t.id for t in p.teams}
    if g_team and not p.is_admin and not mine:
        return False
    if not member and not (g_human or mine):
        return False
    return any((g_human, g_agent, g_team))


def _created(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def _expiry(raw: Any) -> datetime | None:
    try:
        ts = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else None


@router.post("/sessions")
async def adapter_session(request: Request, body: AdapterSessionIn, kube: Kube, p: UserPrincipal) -> dict[str, Any]:
    """Mint (or reuse) the caller's session for `agentID` on `serverName`, bounded by its best grant."""
    human = p.subject or p.email or ""
    server = check_name("serverName", body.serverName.strip())
    agent = body.agentID.strip()
    if not agent:
        raise bad_request("agentID is required")
    if len(agent) > 253 or has_ws(agent):
        raise bad_request("agentID must not contain whitespace")
    ns = body.namespace.strip() or (team_namespaces(p) or [""])[0]
    if not ns:
        raise forbidden("namespace is required (the caller has no team namespace)")
    check_name("namespace", ns, label=True)
    requested = check_trust(body.requestedTrust, "requestedTrust") or "low"
    ttl = parse_duration(body.requestedTTL)
    # Outside the namespace's team, a missing server, a missing namespace and a server without a
    # grant naming the caller all get this one answer, so the route cannot map other teams' servers.
    member = p.is_admin or team_for(p, ns) is not None
    no_grant = forbidden(f"no enabled grant on {ns}/{server} matches human {human} and agent {agent}")
    try:
        server_obj = await kcall(kube.servers.get, ns, server)
    except ApiError as exc:
        if exc.status == 404:
            if not member:
                raise no_grant from None
            raise not_found(f'MCPServer "{server}" not found in namespace "{ns}"') from None
        raise
    grants = [
        g for g in await kcall(kube.grants.list, ns)
        if ((g.get("spec") or {}).get("serverRef") or {}).get("name") == server
        and (((g.get("spec") or {}).get("serverRef") or {}).get("namespace") or ns) == ns
        and _matches(p, human, agent, g, member=member)
    ]
    if not grants:
        raise no_grant
    # Highest maxTrust first; the oldest grant wins a tie (stable, and not changeable by adding grants).
    grants.sort(key=_created)
    grants.sort(key=lambda g: -_rank(str((g.get("spec") or {}).get("maxTrust") or "low")))
    grant = grants[0]
    gspec = grant.get("spec") or {}
    cap = str(gspec.get("maxTrust") or "low")  # §11.9: empty maxTrust renders as low, so it caps at low
    trust = requested if _rank(requested) <= _rank(cap) else cap
    server_team = str((server_obj.get("spec") or {}).get("teamID") or "").strip()
    team = str((gspec.get("subject") or {}).get("teamID") or "") or server_team
    version = str(gspec.get("policyVersion") or "v1")
    now = datetime.now(UTC)
    mine = [o for o in await kcall(kube.sessions.list, ns) if _same_binding(o, ns, server, human, agent, team)]
    revoked = [o for o in mine if (o.get("spec") or {}).get("revoked") is True]
    if revoked:
        raise ApiError(403, "session_revoked", f"session {ns}/{meta(revoked[0])[0]} was revoked by an administrator")
    mine.sort(key=_created)
    existing: dict[str, Any] | None = mine[-1] if mine else None
    name = meta(existing)[0] if existing is not None else new_session_name()
    reused = False
    if existing is not None:
        espec = existing.get("spec") or {}
        left = _expiry(espec.get("expiresAt"))
        reused = (
            str(espec.get("policyVersion") or "v1") == version
            and str(espec.get("consentedTrust") or "low") == trust
            and left is not None
            and left - now > REUSE_MARGIN
        )
    policy: dict[str, Any] = {}
    if reused:
        assert existing is not None
        obj = existing
    else:
        subject = {k: v for k, v in (("humanID", human), ("agentID", agent), ("teamID", team)) if v}
        spec = {
            "serverRef": {"name": server, "namespace": ns},
            "subject": subject,
            "consentedTrust": trust,
            "expiresAt": (now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "policyVersion": version,
            "revoked": False,
        }
        obj = await upsert(kube.sessions, ns, name, spec, keep=())
        policy = await sync_policy(request, kube, ns, server)
        await notify_expiry(request, obj)
        await audit(request, p, "adapter_session", f"session/{ns}/{name}", ns, f"agent={agent} trust={trust}")
    spec_out = obj.get("spec") or {}
    out: dict[str, Any] = {
        "name": meta(obj)[0],
        "namespace": ns,
        "humanID": human,
        "agentID": agent,
        "serverName": server,
        "consentedTrust": spec_out.get("consentedTrust") or trust,
        "policyVersion": spec_out.get("policyVersion") or version,
        "expiresAt": spec_out.get("expiresAt", ""),
        "reused": reused,
    }
    if team:
        out["teamID"] = team
    if policy:
        out["policy"] = policy
    return out
