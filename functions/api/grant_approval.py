"""A grant's `approval` (issue 18 item 3) as the grant routes accept it: shape and validation.

Kept apart from `routes/governance.py` (the grant routes) so that module stays one noun; the approvals
themselves live in `functions/api/routes/approvals.py` and `workflows/approvals/`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from functions.api.errors import bad_request
from functions.api.models import NON_BLANK, Loose, integral
from functions.api.services.scope import compact
from mcp_sentinel.policy.approvals import DEFAULT_TTL_SECONDS, MAX_TOOLS, MAX_TTL_SECONDS, MIN_TTL_SECONDS


class ApprovalIn(Loose):
    """`approval`: calls of these tools or side-effect classes wait for the server's owners (at least one)."""

    model_config = Loose.model_config | {"json_schema_extra": {"anyOf": [
        {"required": ["sideEffects"], "properties": {"sideEffects": {"minItems": 1}}},
        {"required": ["tools"], "properties": {"tools": {"minItems": 1}}},
    ]}}

    sideEffects: list[Literal["read", "write", "destructive"]] = Field(default_factory=list, max_length=3)
    tools: list[Annotated[str, Field(min_length=1, max_length=253, pattern=NON_BLANK)]] = Field(
        default_factory=list, max_length=MAX_TOOLS)
    ttlSeconds: Annotated[int, Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS), BeforeValidator(integral)] = (
        DEFAULT_TTL_SECONDS)


def check_approval(body: ApprovalIn) -> dict[str, Any]:
    """A validated `approval` (400 naming the first bad entry)."""
    effects: list[str] = []
    for e in body.sideEffects:  # the model checked each entry; duplicates collapse
        if e not in effects:
            effects.append(e)
    tools: list[str] = []
    for t in body.tools:
        if t not in tools:
            tools.append(t)
    if not effects and not tools:
        raise bad_request("approval needs at least one of sideEffects or tools")
    return {**compact({"sideEffects": effects, "tools": tools}), "ttlSeconds": body.ttlSeconds}
