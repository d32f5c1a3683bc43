"""A filtered 2026-07-28 `tools/list` result is marked `cacheScope: "private"` (MCP SEP-2549): it is
per caller now, so no shared cache may serve it to someone else. Legacy results are left as they were."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sidecar.streams import filter_json_body, filter_sse_event


def _visible(key: str, item: Mapping[str, Any]) -> bool:
    return key == "tools" and item.get("name") != "delete_document"


def _listing(**extra: object) -> dict[str, object]:
    tools = [{"name": "search"}, {"name": "delete_document"}]
    return {"jsonrpc": "2.0", "id": 1, "result": {"tools": tools, **extra}}


def test_a_2026_result_becomes_private_once_filtered() -> None:
    for extra in ({"ttlMs": 60000, "cacheScope": "public"}, {"ttlMs": 5}, {"cacheScope": "public"}):
        out = json.loads(filter_json_body(json.dumps(_listing(**extra)).encode(), _visible))
        assert [t["name"] for t in out["result"]["tools"]] == ["search"]
        assert out["result"]["cacheScope"] == "private", extra
        assert out["result"].get("ttlMs") == extra.get("ttlMs")


def test_a_legacy_result_gains_no_new_field() -> None:
    out = json.loads(filter_json_body(json.dumps(_listing()).encode(), _visible))
    assert out["result"] == {"tools": [{"name": "search"}]}


def test_sse_events_are_marked_too_and_other_results_untouched() -> None:
    event = b"event: message\ndata: " + json.dumps(_listing(ttlMs=1, cacheScope="public")).encode() + b"\n\n"
    out = filter_sse_event(event, _visible)
    payload = json.loads(out.split(b"data: ", 1)[1])
    assert payload["result"]["cacheScope"] == "private"
    other = json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"content": [], "cacheScope": "public"}}).encode()
    assert filter_json_body(other, _visible) == other  # not a list result: not rewritten
