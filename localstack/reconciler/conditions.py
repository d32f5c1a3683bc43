"""The MCPServer status both reconcilers write (this one and the cluster workflow):

`{observedGeneration, url, policyRevision, conditions: [{type, status, reason, message, lastTransitionTime}]}`
with condition types `Ready`, `GatewayReady`, `PolicyDelivered` and status "True" | "False" | "Unknown".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

READY, GATEWAY_READY, POLICY_DELIVERED = "Ready", "GatewayReady", "PolicyDelivered"
TYPES = (READY, GATEWAY_READY, POLICY_DELIVERED)


@dataclass(frozen=True)
class Condition:
    """One condition without its transition time (that comes from the previous status)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


def now_rfc3339() -> str:
    """metav1.Time: second precision, UTC, `Z`."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_status(
    previous: Mapping[str, Any] | None,
    *,
    generation: int,
    url: str,
    revision: str,
    conditions: Sequence[Condition],
    now: str | None = None,
) -> dict[str, Any]:
    """The status to write; a condition keeps its lastTransitionTime while its status is unchanged."""
    before = {c.get("type"): c for c in (previous or {}).get("conditions") or [] if isinstance(c, dict)}
    stamp = now or now_rfc3339()
    out = []
    for c in conditions:
        old = before.get(c.type) or {}
        since = old.get("lastTransitionTime") if old.get("status") == c.status else None
        out.append({"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
                    "lastTransitionTime": since or stamp})
    return {"observedGeneration": generation, "url": url, "policyRevision": revision, "conditions": out}


def same_status(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing `desired` would change nothing we own (so no write, and no watch event loop)."""
    current = current or {}
    return all(current.get(k) == v for k, v in desired.items())
