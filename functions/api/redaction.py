"""What team members who do not administer a server may not read of its audit events.

Server events (`/api/runtime/server-events`) are whole rows for the server's administrators
(admins, the owning team's owners, the server's creator); other members of the team see the
operational columns only. Usage analytics (`/api/user/analytics/usage`) follow the same rule per
namespace: a member who does not own the namespace's team sees other people's rows without who
called (human, agent) and under which session; its own calls stay visible. Upstream shows server
events to administrators only.
"""

from __future__ import annotations

from typing import Any

from mcp_sentinel.identity.principal import Principal

# Per event: identity, session, correlation and the stored payload (arguments, everything else).
EVENT_COLUMNS = ("trace_id", "human_id", "agent_id", "session_id", "subject_team_id", "payload")
# Per usage row: who called and under which session.
USAGE_COLUMNS = ("human_id", "agent_id", "session_id")


def redacted_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event row without the columns plain members may not see."""
    return {k: v for k, v in event.items() if k not in EVENT_COLUMNS}


def member_usage(p: Principal, body: dict[str, Any], namespaces: tuple[str, ...]) -> dict[str, Any]:
    """A non-admin's usage answer with other people's identities removed where it does not own the team.

    `recent` rows carry their namespace; `actors` and `tools` are summed over the whole scope, so
    they keep identities only when the caller owns every namespace of the scope (or the row is its own).
    """
    owned = {t.namespace for t in p.teams if t.role == "owner" and t.namespace}
    if set(namespaces) <= owned:
        return body
    masked = False

    def keep(row: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        nonlocal masked
        if (p.subject and row.get("human_id") == p.subject) or (namespace is not None and namespace in owned):
            return row
        if any(k in row for k in USAGE_COLUMNS):
            masked = True
        return {k: v for k, v in row.items() if k not in USAGE_COLUMNS}

    out = dict(body)
    if "recent" in out:
        out["recent"] = [keep(r, str(r.get("namespace") or "")) for r in out["recent"]]
    for key in ("actors", "tools"):
        if key in out:
            out[key] = [keep(r, None) for r in out[key]]
    if masked:
        out["redacted"] = list(USAGE_COLUMNS)
    return out
