"""Helpers shared by the processor tests and others (their fixtures: tests/processor/conftest.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from localstack.config import StackConfig
from localstack.parts import processor as processor_part
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


# What the local dispatcher sends (the stack's processor part expects it).
AUTH = {"authorization": f"Bearer {StackConfig().processor_delivery_token}"}


def payload(**extra: Any) -> dict[str, Any]:
    body = {"server": "srv", "namespace": "ns", "team_id": "owner-team", "cluster": "c", "human_id": "alice",
            "agent_id": "bot", "session_id": "sess", "decision": "deny", "tool_name": "rm", "reason": "no_grant",
            "rpc_method": "tools/call", "subject_team_id": "caller-team"}  # fmt: skip
    body.update(extra)
    return body


def binary_headers(event_id: str, **extra: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "mcp-gateway",
        "ce-type": "mcp.request",
        "ce-time": datetime.now(UTC).isoformat(),
        "ce-traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
        "ce-partition": "2",
        "ce-offset": "41",
        "ce-key": "ns/srv",
        **AUTH,
        **extra,
    }


@dataclasses.dataclass
class Proc:
    url: str
    database: str
    ch_url: str

    def rows(self, event_id_prefix: str) -> list[tuple[Any, ...]]:
        client = clickhouse_client_from_url(self.ch_url, self.database)
        try:
            return list(client.query(
                "SELECT event_id, trace_id, server, namespace, team_id, human_id, decision, tool_name, reason, "
                "rpc_method, subject_team_id FROM events FINAL WHERE startsWith(event_id, {p:String}) "
                "ORDER BY event_id",
                parameters={"p": event_id_prefix},
            ).result_rows)  # fmt: skip
        finally:
            client.close()


def start_processor(sup: Supervisor, cfg: StackConfig, database: str) -> None:
    (comp,) = processor_part.components(cfg)
    sup.start(dataclasses.replace(comp, env={**comp.env, "CLICKHOUSE_DB": database}))
