"""`quotas` of a grant in the API (issue 18.1): the request model (its OpenAPI schema) and the checks.

Same shape as the CRD's `spec.quotas` and the policy document's (mcp_sentinel/policy/quotas.py);
the renderer validates again, so a quota the API let through can never make a policy invalid.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from functions.api.errors import bad_request
from functions.api.models import NON_BLANK, Loose, integral
from mcp_sentinel.policy.quotas import MAX_WINDOW_SECONDS

MAX_QUOTAS = 20  # per grant; the CRD says the same (maxItems)


class QuotaIn(Loose):
    """At most `limit` tool calls per `windowSeconds`, counted per session, agent or human.

    `tool` or `sideEffect` narrow what counts; without either every tool call the grant allows counts.
    """

    # JSON Schema integers: 17.0 is one (functions.api.models.integral), "17" is not.
    limit: Annotated[int, Field(ge=1, le=1_000_000_000), BeforeValidator(integral)]
    windowSeconds: Annotated[int, Field(ge=1, le=MAX_WINDOW_SECONDS), BeforeValidator(integral)]
    per: Literal["session", "agent", "human"]
    tool: str = Field(default="", max_length=253, pattern=rf"^$|{NON_BLANK}")
    sideEffect: Literal["", "read", "write", "destructive"] = ""


def check_quotas(given: list[QuotaIn]) -> list[dict[str, object]]:
    """The `spec.quotas` entries to store (400 naming the first bad one); types and ranges are the model's."""
    out: list[dict[str, object]] = []
    for i, q in enumerate(given):
        tool = q.tool.strip()
        if q.tool and not tool:
            raise bad_request(f"quotas[{i}].tool must name a tool when present")
        entry: dict[str, object] = {"limit": q.limit, "windowSeconds": q.windowSeconds, "per": q.per}
        if tool:
            entry["tool"] = tool
        if q.sideEffect:
            entry["sideEffect"] = q.sideEffect
        if entry in out:
            raise bad_request(f"quotas[{i}] duplicates quotas[{out.index(entry)}]")
        out.append(entry)
    return out
