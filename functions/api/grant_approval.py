"""A grant's `approval` (issue 18 item 3) as the grant routes accept it: shape and validation.

Kept apart from `routes/governance.py` (the grant routes) so that module stays one noun; the approvals
themselves live in `functions/api/routes/approvals.py` and `workflows/approvals/`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from functions.api.errors import bad_request
from functions.api.routes.governance_scope import SIDE_EFFECTS, compact
from mcp_sentinel.policy.approvals import DEFAULT_TTL_SECONDS, MAX_TOOLS, MAX_TTL_SECONDS, MIN_TTL_SECONDS


class ApprovalIn(BaseModel):
    """`approval`: calls of these tools or side-effect classes wait for the server's owners."""

    model_config = ConfigDict(extra="ignore")

    sideEffects: list[str] = Field(default_factory=list, max_length=3)
    tools: list[str] = Field(default_factory=list, max_length=MAX_TOOLS)
    ttlSeconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)


def check_approval(body: ApprovalIn) -> dict[str, Any]:
    """A validated `approval` (400 naming the first bad entry)."""
    effects: list[str] = []
    for i, raw in enumerate(body.sideEffects):
        e = raw.strip().lower()
        if e not in SIDE_EFFECTS:
            raise bad_request(f"approval.sideEffects[{i}] must be read, write, or destructive")
        if e not in effects:
            effects.append(e)
    tools: list[str] = []
    for i, raw in enumerate(body.tools):
        t = raw.strip()
        if not t:
            raise bad_request(f"approval.tools[{i}] is empty")
        if t not in tools:
            tools.append(t)
    if not effects and not tools:
        raise bad_request("approval needs at least one of sideEffects or tools")
    return {**compact({"sideEffects": effects, "tools": tools}), "ttlSeconds": body.ttlSeconds}
