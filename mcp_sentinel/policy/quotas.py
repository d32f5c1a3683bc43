"""Grant quotas (issue 18.1): their validation, their rendering from `spec.quotas`, and their compiled form.

A quota bounds the tool calls one grant lets through: at most `limit` calls per window of
`windowSeconds`, counted separately per session, agent or human, optionally only for one tool or
one side-effect class. The evaluator decides *whether* a call is allowed; the quotas of the grant
the allow is attributed to (`Decision.matched_grant`) then decide *how many*. Counting is the
sidecar's (`sidecar.quota`); this module is stdlib only because the sidecar imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_sentinel.policy.document import Grant, Quota
from mcp_sentinel.policy.errors import PolicyError
from mcp_sentinel.policy.normalize import SIDE_EFFECTS, fold, go_trim, side_effect

PER_KEYS = ("session", "agent", "human")
MAX_WINDOW_SECONDS = 30 * 24 * 3600  # 2592000: a month; longer windows belong in billing, not a gateway


@dataclass(frozen=True, slots=True)
class CompiledQuota:
    """One quota of one grant, ready for the hot path.

    `key` names the counter family: (grant namespace, grant name, index of the quota in the grant).
    """

    key: tuple[str, str, int]
    limit: int
    window: float
    per: str
    tool: str
    side_effect: str

    def applies(self, tool: str, effect: str) -> bool:
        """Whether a call of `tool` with side effect `effect` counts against this quota."""
        return (not self.tool or self.tool == tool) and (not self.side_effect or self.side_effect == effect)


GrantQuotas = Mapping[tuple[str, str], tuple[CompiledQuota, ...]]
"""(grant namespace, grant name) -> that grant's quotas; grants without quotas are absent."""


def compile_quotas(grants: Iterable[Grant]) -> dict[tuple[str, str], tuple[CompiledQuota, ...]]:
    """The index the sidecar consults after an allow: only grants that carry quotas appear."""
    out: dict[tuple[str, str], tuple[CompiledQuota, ...]] = {}
    for g in grants:
        if not g.quotas:
            continue
        out[(g.namespace, g.name)] = tuple(
            CompiledQuota(
                key=(g.namespace, g.name, i),
                limit=q.limit,
                window=float(q.window_seconds),
                per=fold(q.per),
                tool=q.tool,
                side_effect=side_effect(q.side_effect) if q.side_effect else "",
            )
            for i, q in enumerate(g.quotas)
        )
    return out


def validate_quotas(where: str, quotas: tuple[Quota, ...]) -> None:
    """Raise `PolicyError` naming the first bad quota of a grant (`where` is e.g. `grants[3].quotas`)."""
    for i, q in enumerate(quotas):
        qwhere = f"{where}[{i}]"
        if q.limit < 1:
            raise PolicyError(f"{qwhere}.limit must be at least 1, got {q.limit}")
        if not 1 <= q.window_seconds <= MAX_WINDOW_SECONDS:
            raise PolicyError(f"{qwhere}.windowSeconds must be 1..{MAX_WINDOW_SECONDS}, got {q.window_seconds}")
        if fold(q.per) not in PER_KEYS:
            raise PolicyError(f'{qwhere}.per "{q.per}" must be session, agent or human')
        if q.side_effect and fold(q.side_effect) not in SIDE_EFFECTS:
            raise PolicyError(f'{qwhere}.sideEffect "{q.side_effect}" must be read, write or destructive')
        if q.tool and not go_trim(q.tool):
            raise PolicyError(f"{qwhere}.tool must name a tool when present")


def _int(q: Mapping[str, Any], key: str) -> int:
    value = q.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"quotas.{key}: expected an integer, got {type(value).__name__}")
    return value


def _text(q: Mapping[str, Any], key: str) -> str:
    value = q.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PolicyError(f"quotas.{key}: expected a string, got {type(value).__name__}")
    return value


def render_quotas(spec: Mapping[str, Any]) -> tuple[Quota, ...]:
    """`spec.quotas` of an MCPAccessGrant as document quotas (same camelCase shape; validated later)."""
    raw = spec.get("quotas") or []
    if not isinstance(raw, list):
        raise PolicyError("quotas: expected a list")
    return tuple(
        Quota(
            limit=_int(q, "limit"),
            window_seconds=_int(q, "windowSeconds"),
            per=_text(q, "per"),
            tool=_text(q, "tool"),
            side_effect=_text(q, "sideEffect"),
        )
        for q in raw
        if isinstance(q, Mapping)
    )
