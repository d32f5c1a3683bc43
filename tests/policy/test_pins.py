"""Pinned tool definitions in the policy document: rendered, validated, covered by the revision, compared."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mcp_sentinel.policy import PolicyError, compute_revision, parse_document, render_document, render_policy
from mcp_sentinel.policy.pins import ToolPins
from mcp_sentinel.policy.reasons import TOOL_DEFINITION_CHANGED
from mcp_sentinel.policy.tool_digest import tool_digest

NOW = datetime(2026, 5, 4, 18, 0, tzinfo=UTC)
SEARCH = {"name": "search", "description": "Search", "inputSchema": {"type": "object"}}
PIN = tool_digest(SEARCH)
SERVER: dict[str, Any] = {
    "metadata": {"name": "srv", "namespace": "mcp-team-a"},
    "spec": {"gateway": {"enabled": True}, "tools": [{"name": "search", "sideEffect": "read"}]},
}


def _server(**spec: Any) -> dict[str, Any]:
    out = copy.deepcopy(SERVER)
    out["spec"].update(spec)
    return out


def test_pins_are_rendered_into_the_server_block_with_camel_case_keys() -> None:
    text = render_policy(_server(toolPins={"search": PIN}, unpinnedTools=["echo", "echo"]), [], [], now=NOW)
    server = json.loads(text)["server"]
    assert server["toolPins"] == {"search": PIN}
    assert server["unpinnedTools"] == ["echo"]
    doc = parse_document(text)
    assert doc.server.tool_pins == {"search": PIN} and doc.server.unpinned_tools == ("echo",)


def test_documents_without_pins_keep_their_revision_and_pins_change_it() -> None:
    plain = render_document(SERVER, [], [])
    assert "toolPins" not in render_policy(SERVER, [], [], now=NOW)
    pinned = render_document(_server(toolPins={"search": PIN}), [], [])
    assert pinned.revision != plain.revision
    other = render_document(_server(toolPins={"search": tool_digest({**SEARCH, "description": "x"})}), [], [])
    assert other.revision != pinned.revision
    assert compute_revision(pinned) == pinned.revision


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"toolPins": {"search": "sha256:abc"}}, 'toolPins["search"]'),
        ({"toolPins": {"search": PIN.upper()}}, 'toolPins["search"]'),
        ({"toolPins": {"search": 7}}, 'toolPins["search"]'),
        ({"toolPins": {" ": PIN}}, "tool name is empty"),
        ({"unpinnedTools": [""]}, "unpinnedTools[0]"),
        ({"unpinnedTools": "search"}, "unpinnedTools[0]"),
    ],
)
def test_malformed_pins_fail_validation(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        render_policy(_server(**spec), [], [], now=NOW)


def test_verdicts_inactive_without_pins() -> None:
    pins = ToolPins.of(render_document(SERVER, [], []))
    assert not pins.active
    assert pins.verdict("search", None) == ""
    assert pins.verdict("anything", "sha256:" + "0" * 64) == ""


def test_verdicts_when_pinning_is_active() -> None:
    pins = ToolPins.of(render_document(_server(toolPins={"search": PIN}, unpinnedTools=["echo"]), [], []))
    assert pins.active
    assert pins.verdict("search", PIN) == ""
    assert pins.verdict("search", tool_digest({**SEARCH, "description": "exfiltrate"})) == TOOL_DEFINITION_CHANGED
    assert pins.verdict("search", None) == TOOL_DEFINITION_CHANGED  # never seen: fail closed
    assert pins.verdict("new_tool", tool_digest({"name": "new_tool"})) == TOOL_DEFINITION_CHANGED  # no pin
    assert pins.verdict("echo", None) == ""  # explicit opt-out
    assert not pins.needs_check("echo") and pins.needs_check("new_tool")
