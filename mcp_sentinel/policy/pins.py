"""Pinned tool definitions in the policy document (issue 18, item 2): what the gateway compares.

The server block carries `toolPins` (tool name -> `tool_digest` of the approved definition) and
`unpinnedTools` (explicit opt-outs). Pinning is active for a server once `toolPins` is non-empty;
then a tool is usable only when it is opted out, or when its live definition's digest equals its
pin. A tool without a pin is treated like a changed one: a server that starts serving a new tool
must have it approved first. An unknown live definition (the gateway never saw one) fails closed.
Stdlib only: the sidecar compiles this per policy snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping

from mcp_sentinel.policy.document import PolicyDocument
from mcp_sentinel.policy.reasons import TOOL_DEFINITION_CHANGED


class ToolPins:
    """The pins of one policy snapshot; immutable."""

    __slots__ = ("active", "pins", "unpinned")

    def __init__(self, pins: Mapping[str, str], unpinned: frozenset[str]) -> None:
        self.pins = dict(pins)
        self.unpinned = unpinned
        self.active = bool(self.pins)

    @classmethod
    def of(cls, doc: PolicyDocument) -> ToolPins:
        """The pins a document declares (inactive when it has none)."""
        return cls(doc.server.tool_pins, frozenset(doc.server.unpinned_tools))

    def needs_check(self, name: str) -> bool:
        """True when calls of `name` must match a pin (pinning active and no explicit opt-out)."""
        return self.active and name not in self.unpinned

    def verdict(self, name: str, live_digest: str | None) -> str:
        """"" when `name` may be listed and called with the live definition `live_digest` (None:
        unknown), else the deny reason (`tool_definition_changed`)."""
        if not self.needs_check(name):
            return ""
        pin = self.pins.get(name)
        if pin is None or live_digest is None or live_digest != pin:
            return TOOL_DEFINITION_CHANGED
        return ""
