"""Holding each event to its writer's credential: no row may claim another server, namespace or team.

The gateway's `server`/`namespace` must equal the credential's (403 otherwise; the whole request
is refused, nothing is produced). `team_id` is the server's owning team for analytics: it is
never taken from the payload but stamped from the credential, which the platform issued from the
namespace's team label. `human_id`, `agent_id`, `subject_team_id` and `session_id` stay as sent:
they are the gateway's statements about its caller, and the bound `server` column says which
gateway made them.
"""

from __future__ import annotations

from dataclasses import replace

from mcp_sentinel.cloudevents_codec import DecodedEvent
from mcp_sentinel.envelope import FieldError
from mcp_sentinel.gateway_credentials import GatewayBinding

_BOUND_FIELDS = ("namespace", "server")


def binding_errors(events: tuple[DecodedEvent, ...], binding: GatewayBinding, *, batch: bool) -> list[FieldError]:
    """Every event field that contradicts the credential (missing counts: the gateway always sends both)."""
    errors = []
    expected = {"namespace": binding.namespace, "server": binding.server}
    for i, ev in enumerate(events):
        for name in _BOUND_FIELDS:
            if ev.envelope.payload.get(name) != expected[name]:
                path = f"[{i}].payload.{name}" if batch else f"payload.{name}"
                errors.append(FieldError(path, f"this credential writes only for {name} {expected[name]!r}"))
    return errors


def stamp_team(events: tuple[DecodedEvent, ...], binding: GatewayBinding) -> tuple[tuple[DecodedEvent, ...], int]:
    """Events whose `team_id` is the credential's team, and how many claimed another one."""
    out, changed = [], 0
    for ev in events:
        payload = ev.envelope.payload
        if payload.get("team_id", "") == binding.team:
            out.append(ev)
            continue
        if payload.get("team_id") not in (None, "", binding.team):
            changed += 1
        env = replace(ev.envelope, payload={**payload, "team_id": binding.team})
        out.append(replace(ev, envelope=env))
    return tuple(out), changed
