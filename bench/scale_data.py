"""Synthetic audit events generated inside ClickHouse (`INSERT … SELECT … FROM numbers()`).

Python never sees a row: 10M events would take minutes to build and send from here, while the
server produces them in seconds. Distributions follow a platform with a few hundred agents:

* 300 humans in 20 teams, skewed (a few people make most calls); each human runs 1–3 agents;
* 40 servers, two per team (namespace = the server's team); a human calls their own team's
  servers 85% of the time, any server otherwise;
* 12 tools per server, skewed; 90% allow, 8% deny, 2% no decision (errors, inventory);
* a session is one agent on one server for a 4-hour block; 95% `mcp-gateway` requests, the rest
  inventory/lifecycle events;
* timestamps spread evenly over `days` ending now, so windows of 1/7/30 days hold
  proportional shares.
"""

from __future__ import annotations

from typing import Any

from mcp_sentinel.storage.client import validate_database
from mcp_sentinel.storage.schema import EVENTS_TABLE, INSERT_COLUMNS

CHUNK = 1_000_000


def _select(start: int, count: int, total: int, days: int) -> str:
    span_ms = days * 86_400_000
    # r(k): an independent uniform in [0, 1) per row and salt.
    r = "(cityHash64(number, {k}) % 1000000) / 1000000.0"

    def rnd(k: int) -> str:
        return r.format(k=k)

    return f"""
SELECT
    toString(generateUUIDv4(number)) AS event_id,
    now64(3) - toIntervalMillisecond(intDiv(({total} - number) * {span_ms}, {total})) AS timestamp,
    lower(hex(cityHash64(number, 7))) || lower(hex(cityHash64(number, 8))) AS trace_id,
    if({rnd(9)} < 0.95, 'mcp-gateway', 'mcp-inventory') AS source,
    multiIf(source = 'mcp-inventory', 'mcp.inventory', {rnd(10)} < 0.97, 'mcp.request', 'mcp.session') AS event_type,
    toUInt32(300 * pow({rnd(1)}, 2)) AS h,
    h % 20 AS h_team,
    h * 3 + (cityHash64(number, 2) % (h % 3 + 1)) AS a,
    if({rnd(3)} < 0.85, h_team + 20 * (cityHash64(number, 4) % 2), cityHash64(number, 5) % 40) AS s,
    s % 20 AS s_team,
    toUInt32(12 * pow({rnd(6)}, 1.8)) AS t,
    multiIf(source = 'mcp-inventory', '', {rnd(11)} < 0.9, 'allow', {rnd(12)} < 0.8, 'deny', '') AS decision,
    concat(
        '{{"server":"', 'srv-' || toString(s),
        '","namespace":"', 'ns-team-' || toString(s_team),
        '","team_id":"', 'team-' || toString(s_team),
        '","cluster":"', if(s < 30, 'prod-eu', 'prod-us'),
        '","human_id":"', if(source = 'mcp-inventory', '', 'human-' || toString(h) || '@example.com'),
        '","agent_id":"', if(source = 'mcp-inventory', '', 'agent-' || toString(a)),
        '","session_id":"', if(source = 'mcp-inventory', '', 'sess-' || toString(a) || '-' || toString(s)
                               || '-' || toString(intDiv(toUnixTimestamp(timestamp), 14400))),
        '","decision":"', decision,
        '","tool_name":"', if(event_type = 'mcp.request', 'tool-' || toString(t), ''),
        '","reason":"', multiIf(decision = 'allow', 'allowed', decision = 'deny', 'no grant for tool', ''),
        '","rpc_method":"',
        multiIf(event_type = 'mcp.request', 'tools/call', event_type = 'mcp.session', 'initialize', ''),
        '","subject_team_id":"', if(source = 'mcp-inventory', '', 'team-' || toString(h_team)),
        '","status":"', if(decision = 'deny', '403', '200'),
        '","latency_ms":"', toString(cityHash64(number, 13) % 250),
        '"}}'
    ) AS payload
FROM numbers({start}, {count})"""


def generate(client: Any, database: str, total: int, *, days: int = 30, chunk: int = CHUNK) -> None:
    """Insert `total` synthetic events into `<database>.events`, in chunks of `chunk` rows."""
    db = validate_database(database)
    cols = ", ".join(INSERT_COLUMNS)
    for start in range(0, total, chunk):
        count = min(chunk, total - start)
        client.command(
            f"INSERT INTO {db}.{EVENTS_TABLE} ({cols}) SELECT {cols} FROM ({_select(start, count, total, days)})",
            settings={"max_insert_threads": 2},
        )
