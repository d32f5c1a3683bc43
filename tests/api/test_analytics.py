"""Audit and analytics routes against a real embedded ClickHouse (and the local Kubernetes API server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mcp_sentinel.envelope import new_envelope
from mcp_sentinel.storage.events import EventRecord, EventWriter
from tests.helpers.api import ADMIN_KEY, USER_SERVICE_KEY, Api, AppFactory

ADMIN = {"x-api-key": ADMIN_KEY}
NASTY = ["' OR 1=1 --", "../../etc/passwd", "x\x00y", "%27%3B DROP TABLE events", "{f_server:String}", "😀" * 40]


def _events(now: datetime) -> list[EventRecord]:
    def ev(minutes: int, **payload: Any) -> EventRecord:
        env = new_envelope("server-a-gateway", "mcp.request", payload, timestamp=now - timedelta(minutes=minutes))
        return EventRecord.from_envelope(env)

    return [
        ev(1, server="server-a", namespace="mcp-team-red", team_id="team-red", decision="allow", tool_name="search",
           human_id="alice", agent_id="bot", session_id="s1", reason="allowed"),
        ev(2, server="server-a", namespace="mcp-team-red", team_id="team-red", decision="deny", tool_name="delete",
           human_id="alice", agent_id="bot", session_id="s1", reason="trust_too_low"),
        ev(3, server="catalog", namespace="mcp-servers", decision="allow", tool_name="search", human_id="bob"),
        ev(4, server="server-b", namespace="mcp-team-blue", team_id="team-blue", decision="allow", tool_name="read",
           human_id="carol", agent_id="bot"),
    ]


@pytest.fixture
async def analytics(make_api: AppFactory, ch_client: Any, ch_database: str, kube_cluster: Any) -> Api:
    EventWriter(ch_client, ch_database).write(_events(datetime.now(UTC)))
    return await make_api(clickhouse_db=ch_database, _backends={"clickhouse": ch_client, "kube": kube_cluster.api})


async def test_events_pages_and_filters(analytics: Api) -> None:
    c = analytics.client
    r = await c.get("/api/events", params={"limit": 3}, headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["tool_name"] for e in body["events"]] == ["search", "delete", "search"]
    assert body["meta"]["has_more"] is True and body["next"].startswith("/api/events?")
    r2 = await c.get("/api/events", params={"limit": 3, "cursor": body["meta"]["next_cursor"]}, headers=ADMIN)
    assert [e["server"] for e in r2.json()["events"]] == ["server-b"] and r2.json()["meta"]["has_more"] is False
    r = await c.get("/api/events/filter", params={"server": "server-a", "decision": "deny"}, headers=ADMIN)
    assert [e["reason"] for e in r.json()["events"]] == ["trust_too_low"]
    r = await c.get("/api/events/filter", params={"tool": "read", "status": "allow"}, headers=ADMIN)
    assert [e["human_id"] for e in r.json()["events"]] == ["carol"]
    for name in ("human_id", "agent_id", "session_id", "namespace", "team_id", "source", "event_type"):
        r = await c.get("/api/events/filter", params={name: "nobody-has-this"}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["events"] == [], name


async def test_counts_and_summary(analytics: Api) -> None:
    c = analytics.client
    assert (await c.get("/api/stats", headers=ADMIN)).json() == {"events_total": 4}
    assert (await c.get("/api/sources", headers=ADMIN)).json() == {"sources": [{"source": "server-a-gateway",
                                                                                  "count": 4}]}
    assert (await c.get("/api/event-types", headers=ADMIN)).json()["event_types"][0]["count"] == 4
    s = (await c.get("/api/dashboard/summary", headers=ADMIN)).json()
    assert s["total_events"] == 4 and s["latest_source"] == "server-a-gateway" and "last_event_time" in s
    assert s["active_servers"] >= 2 and s["active_grants"] >= 1  # the demo seed lives in the cluster


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/events", {"limit": "0"}, "limit must be between 1 and 1000"),
        ("/api/events", {"limit": "1001"}, "limit must be between 1 and 1000"),
        ("/api/events", {"limit": "ten"}, "limit must be an integer"),
        ("/api/events", {"cursor": "not-a-cursor"}, "cursor is invalid"),
        ("/api/events/filter", {"since": "yesterday"}, "since must be RFC 3339 or YYYY-MM-DD"),
        ("/api/events/filter", {"since": "2026-02-02", "until": "2026-01-01"}, "since must not be after until"),
        ("/api/events/filter", {"server": "x" * 600}, "server must be at most 512 characters"),
        ("/api/analytics/usage", {"window_days": "0"}, "window_days must be between 1 and 365"),
        ("/api/analytics/usage", {"window_days": "366"}, "window_days must be between 1 and 365"),
        ("/api/analytics/usage", {"limit": "51"}, "limit must be between 1 and 50"),
        ("/api/analytics/usage", {"namespace": "../etc"}, "must be a lowercase DNS-1123 name"),
        ("/api/runtime/server-events", {"namespace": "mcp-servers"}, "server is required"),
        ("/api/runtime/server-events", {"namespace": "mcp-servers", "server": "a", "limit": "101"},
         "limit must be at most 100"),
    ],
)
async def test_bad_parameters_are_400(analytics: Api, path: str, params: dict[str, str], message: str) -> None:
    r = await analytics.client.get(path, params=params, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_query_param" or r.json()["error"] == "invalid_request_body"
    assert message in r.json()["message"]


async def test_hostile_filter_values_never_5xx(analytics: Api) -> None:
    from mcp_sentinel.storage.queries import FILTER_NAMES

    for name in FILTER_NAMES:
        for value in NASTY:
            r = await analytics.client.get("/api/events/filter", params={name: value}, headers=ADMIN)
            assert r.status_code in (200, 400), (name, value, r.text)
            if r.status_code == 200:
                assert r.json()["events"] == [], (name, value)
    for value in NASTY:
        for path in ("/api/analytics/usage", "/api/user/analytics/usage"):
            r = await analytics.client.get(path, params={"server": value, "tool": value, "decision": value},
                                           headers=ADMIN)
            assert r.status_code in (200, 400), r.text
    assert (await analytics.client.get("/api/stats", headers=ADMIN)).json() == {"events_total": 4}


async def test_usage_admin_and_user_scopes(analytics: Api) -> None:
    c = analytics.client
    u = (await c.get("/api/analytics/usage", params={"window_days": 1}, headers=ADMIN)).json()
    assert u["totals"]["events"] == 4 and u["totals"]["denied"] == 1 and u["window_days"] == 1
    assert {s["server"] for s in u["servers"]} == {"server-a", "server-b", "catalog"}
    u = (await c.get("/api/analytics/usage", params={"namespace": "mcp-team-red,mcp-team-blue"},
                     headers=ADMIN)).json()
    assert u["totals"]["events"] == 3 and u["filters"]["namespaces"] == ["mcp-team-red", "mcp-team-blue"]
    # A member of team red sees red's events only; the shared catalog is never a user's to see.
    user = await analytics.signup("red-user@example.com")
    auth = {"Authorization": f"Bearer {user['access_token']}"}
    empty = (await c.get("/api/user/analytics/usage", headers=auth)).json()
    assert empty["totals"]["events"] == 0 and empty["servers"] == []
    team = (await c.post("/api/runtime/teams", json={"slug": "red"}, headers=ADMIN)).json()["team"]
    await analytics.store.add_member(team["id"], user["user"]["id"], "member")
    u = (await c.get("/api/user/analytics/usage", headers=auth)).json()
    assert u["totals"]["events"] == 2 and {s["server"] for s in u["servers"]} == {"server-a"}
    r = await c.get("/api/user/analytics/usage", params={"namespace": "mcp-servers"}, headers=auth)
    assert r.status_code == 403 and r.json()["message"] == "forbidden namespace"
    r = await c.get("/api/user/analytics/usage", params={"namespace": "mcp-team-blue"}, headers=auth)
    assert r.status_code == 403
    # A user service key has no teams: an empty scope answers empty, without querying.
    r = await c.get("/api/user/analytics/usage", headers={"x-api-key": USER_SERVICE_KEY})
    assert r.status_code == 200 and r.json()["totals"]["events"] == 0
    assert (await c.get("/api/analytics/usage", headers=auth)).status_code == 403


async def test_server_events_scope(analytics: Api, kube_cluster: Any) -> None:
    c = analytics.client
    r = await c.get("/api/runtime/server-events", params={"namespace": "mcp-team-red", "server": "server-a"},
                    headers=ADMIN)
    assert r.status_code == 200 and len(r.json()["events"]) == 2
    user = await analytics.bearer("outsider@example.com")
    r = await c.get("/api/runtime/server-events", params={"namespace": "mcp-servers", "server": "server-a"},
                    headers=user)
    assert r.status_code == 403 and r.json()["message"] == "forbidden server"


async def test_unconfigured_clickhouse_is_503(make_api: AppFactory) -> None:
    api = await make_api()
    for path in ("/api/events", "/api/stats", "/api/analytics/usage", "/api/dashboard/summary"):
        r = await api.client.get(path, headers=ADMIN)
        assert r.status_code == 503 and "CLICKHOUSE_URL" in r.json()["message"], path


async def test_unreachable_clickhouse_is_503(make_api: AppFactory) -> None:
    from localstack.config import Ports

    api = await make_api(clickhouse_url=f"http://127.0.0.1:{Ports.free().api}")
    r = await api.client.get("/api/stats", headers=ADMIN)
    assert r.status_code == 503, r.text


async def test_fresh_clickhouse_is_migrated_by_the_api(
    make_api: AppFactory, clickhouse_url: str, ch_client: Any
) -> None:
    """On a fresh stack the API may be queried before the processor stored anything: it creates the schema."""
    import uuid

    db = f"fresh_{uuid.uuid4().hex[:10]}"
    api = await make_api(clickhouse_url=clickhouse_url, clickhouse_db=db)
    r = await api.client.get("/api/events", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["events"] == []
    tables = {row[0] for row in ch_client.query(f"SHOW TABLES FROM {db}").result_rows}
    assert "events" in tables
    ch_client.command(f"DROP DATABASE {db}")
