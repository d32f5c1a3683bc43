"""The whole audit path with real processes: sidecar → ingest → Kafka → dispatcher → processor → ClickHouse.

One stack per module (started through the Supervisor from the same parts `./dev up` runs), every
component exporting its spans to an in-test OTLP/HTTP receiver. Calls go through a real sidecar
with a caller-chosen `traceparent`, so each test finds its own rows and spans by trace id.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from localstack.components import local_stack
from localstack.config import Ports, StackConfig
from localstack.parts.clickhouse import clickhouse_url
from localstack.supervisor import Supervisor
from mcp_sentinel.storage.client import clickhouse_client_from_url
from mcp_sentinel.storage.queries import EventFilter, EventQueries, EventRow
from tests.helpers.otlp_receiver import OtlpReceiver

PARTS = {"s3", "kafka", "clickhouse", "sample_mcp", "ingest", "processor", "dispatcher", "sidecars"}
ALICE = {"X-MCP-Human-ID": "alice", "X-MCP-Agent-ID": "workspace-agent", "X-MCP-Agent-Session": "sess-alice-a"}


@dataclass
class AuditStack:
    """The running pipeline, its span receiver and a ClickHouse reader."""

    cfg: StackConfig
    sup: Supervisor
    otlp: OtlpReceiver

    def call(self, tool: str, trace_id: str, server: str = "server-a") -> httpx.Response:
        """One `tools/call` through the server's sidecar, continuing trace `trace_id`."""
        params = {"name": tool, "arguments": {"title": "welcome"},
                  "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                            "io.modelcontextprotocol/clientCapabilities": {}}}
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                   "Mcp-Method": "tools/call", "Mcp-Name": tool, "MCP-Protocol-Version": "2026-07-28",
                   "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01", **ALICE}
        port = "sidecar_a" if server == "server-a" else "sidecar_b"
        return httpx.post(self.cfg.url(port, "/mcp"), content=json.dumps(body), headers=headers, timeout=30)

    def queries(self) -> EventQueries:
        return EventQueries(clickhouse_client_from_url(clickhouse_url(self.cfg)), "mcp")

    def rows(self, trace_id: str, expect: int, timeout: float = 45.0) -> list[EventRow]:
        """Rows of one trace once `expect` are stored, then a short settle to catch extras."""
        deadline = time.monotonic() + timeout
        rows: list[EventRow] = []
        while time.monotonic() < deadline:
            try:
                rows = self.queries().events(EventFilter(trace_id=trace_id), limit=100).events
            except Exception:  # ClickHouse may be restarting in fault tests; keep polling
                rows = []
            if len(rows) >= expect:
                time.sleep(1.0)
                return self.queries().events(EventFilter(trace_id=trace_id), limit=100).events
            time.sleep(0.3)
        return rows


def _with_tracing(comp: Any, endpoint: str) -> Any:
    env = {**comp.env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200",
           "LOG_LEVEL": "WARNING"}
    return dataclasses.replace(comp, env=env, startup_timeout=max(comp.startup_timeout, 90.0))


@pytest.fixture(scope="module")
def audit_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditStack]:
    otlp = OtlpReceiver().start()
    cfg = StackConfig(data_dir=tmp_path_factory.mktemp("e2e"), ports=Ports.free())
    sup = Supervisor(cfg)
    try:
        sup.start_all(_with_tracing(c, otlp.endpoint) for c in local_stack(cfg, only=PARTS))
        yield AuditStack(cfg, sup, otlp)
    finally:
        sup.stop_all()
        otlp.stop()


def new_trace() -> str:
    return secrets.token_hex(16)


def test_allowed_and_denied_calls_land_once_with_materialised_fields(audit_stack: AuditStack) -> None:
    allowed_trace, denied_trace = new_trace(), new_trace()
    ok = audit_stack.call("read_document", allowed_trace)
    denied = audit_stack.call("delete_document", denied_trace)
    assert ok.status_code == 200, ok.text
    assert denied.status_code == 403, denied.text

    [allow_row] = audit_stack.rows(allowed_trace, 1)
    [deny_row] = audit_stack.rows(denied_trace, 1)
    common = {"server": "server-a", "namespace": audit_stack.cfg.namespace, "human_id": "alice",
              "agent_id": "workspace-agent", "session_id": "sess-alice-a", "rpc_method": "tools/call",
              "cluster": "local", "source": "server-a-gateway",
              # the team comes from the gateway's credential (the namespace's team), not the policy
              "team_id": audit_stack.cfg.namespace_team}
    for row in (allow_row, deny_row):
        got = {k: getattr(row, k) for k in common}
        assert got == common
    assert (allow_row.decision, allow_row.tool_name, allow_row.reason) == ("allow", "read_document", "allowed")
    assert (deny_row.decision, deny_row.tool_name, deny_row.reason) == ("deny", "delete_document",
                                                                        "tool_not_granted")
    assert allow_row.trace_id == allowed_trace and deny_row.trace_id == denied_trace
    assert allow_row.payload["status"] == 200 and deny_row.payload["status"] == 403
    assert allow_row.id != deny_row.id


# Spans each hop must contribute to the one trace, by exporting service.
HOPS = {
    "server-a-gateway": {"http.server"},
    "mcp-sentinel-ingest": {"http.server", "kafka.produce"},
    "mcp-sentinel-dispatcher": {"kafka_source.deliver"},
}
PROCESSOR_SPANS = {"kafka.consume", "clickhouse.insert_event"}


@pytest.fixture(scope="module")
def traced_call(audit_stack: AuditStack) -> tuple[str, EventRow]:
    trace_id = new_trace()
    assert audit_stack.call("list_documents", trace_id).status_code == 200
    [row] = audit_stack.rows(trace_id, 1)
    audit_stack.otlp.wait_for(trace_id, {n for names in HOPS.values() for n in names})
    return trace_id, row


def test_one_trace_spans_gateway_ingest_kafka_and_dispatcher(
    audit_stack: AuditStack, traced_call: tuple[str, EventRow]
) -> None:
    trace_id, row = traced_call
    assert row.trace_id == trace_id
    spans = audit_stack.otlp.trace(trace_id)
    by_service: dict[str, set[str]] = {}
    for s in spans:
        by_service.setdefault(s.service, set()).add(s.name)
    for service, names in HOPS.items():
        assert names <= by_service.get(service, set()), (service, by_service)

    ids = {s.span_id: s for s in spans}
    [produce] = [s for s in spans if s.name == "kafka.produce"]
    [gateway] = [s for s in spans if s.service == "server-a-gateway"]
    # kafka.produce is the gateway span's child: the hop went through the event's own traceparent.
    assert produce.parent_span_id == gateway.span_id
    assert produce.attributes["kafka.topic"] == "mcp.events"
    assert produce.attributes["cloudevents.event_id"] == row.id
    # The dispatcher continued the Kafka record headers' context (kafka.produce → deliver).
    delivers = [s for s in spans if s.name == "kafka_source.deliver"]
    assert delivers and all(d.parent_span_id == produce.span_id for d in delivers)
    d = delivers[-1]
    assert d.attributes["kafka.topic"] == "mcp.events" and d.attributes["http.response.status_code"] == 200
    assert isinstance(d.attributes["kafka.partition"], int) and isinstance(d.attributes["kafka.offset"], int)
    assert all(s.parent_span_id == "" or s.parent_span_id in ids or s is gateway for s in spans)


def test_the_trace_continues_into_the_processor_and_clickhouse_insert(
    audit_stack: AuditStack, traced_call: tuple[str, EventRow]
) -> None:
    trace_id, _row = traced_call
    # The row is stored, so the processor's spans were ended already; allow a few export intervals.
    spans = audit_stack.otlp.wait_for(trace_id, PROCESSOR_SPANS, timeout=5)
    names = {s.name for s in spans}
    assert PROCESSOR_SPANS <= names, names
    [produce] = [s for s in spans if s.name == "kafka.produce"]
    consume = [s for s in spans if s.name == "kafka.consume"]
    assert consume and consume[-1].parent_span_id == produce.span_id
    assert consume[-1].attributes["kafka.topic"] == "mcp.events"
    assert isinstance(consume[-1].attributes.get("kafka.offset"), int)
    batch = [s for s in audit_stack.otlp.spans
             if s.name == "clickhouse.insert_batch" and (s.trace_id == trace_id or trace_id in s.links)]
    assert batch, "no clickhouse.insert_batch span in or linked to the trace"
    attrs = batch[-1].attributes
    assert attrs["kafka.topic"] == "mcp.events"
    assert "kafka.partition" in attrs or "kafka.partitions" in attrs
    assert attrs["kafka.first_offset"] <= attrs["kafka.last_offset"]
    assert "mcp.events/" in attrs["kafka.offset_ranges"]


def _physical_rows(stack: AuditStack, trace_id: str) -> tuple[int, int]:
    ch = clickhouse_client_from_url(clickhouse_url(stack.cfg))
    try:
        total, distinct = ch.query("SELECT count(), uniqExact(event_id) FROM mcp.events WHERE trace_id = {t:String}",
                                   parameters={"t": trace_id}).result_rows[0]
    finally:
        ch.close()
    return int(total), int(distinct)


def test_sustained_ingest_and_clickhouse_outages_lose_and_double_nothing(audit_stack: AuditStack) -> None:
    """Ingest down ~4 s, then ClickHouse down ~10 s, with calls during each outage (runs last: it
    stops components). `tests/faults` covers SIGKILL+restart of every component; this covers
    outages long enough to exercise the sidecar spool and the dispatcher's retry schedule."""
    from localstack.parts.kafka import bootstrap
    from mcp_sentinel.kafka import DEFAULT_DLQ_TOPIC
    from tests.fixtures.kafka import count_topic

    sup, trace_id = audit_stack.sup, new_trace()
    dlq_before = count_topic(bootstrap(audit_stack.cfg), DEFAULT_DLQ_TOPIC, settle=0.5)
    statuses: list[int] = []

    def burst() -> None:
        tools = ("read_document", "search", "delete_document", "list_documents", "archive_document")
        statuses.extend(audit_stack.call(tool, trace_id).status_code for tool in tools)

    ingest = sup.running["ingest"].component
    sup.stop("ingest")
    burst()  # the gateway answers without ingest: events wait in its spool
    time.sleep(4)
    sup.start(ingest)

    clickhouse = sup.running["clickhouse"].component
    sup.stop("clickhouse")
    burst()  # flows to Kafka; the processor answers 503 and the dispatcher retries
    time.sleep(10)
    sup.start(clickhouse)

    assert statuses == [200, 200, 403, 200, 403] * 2
    rows = audit_stack.rows(trace_id, len(statuses), timeout=120)
    assert len(rows) == len(statuses), [(r.tool_name, r.decision) for r in rows]
    assert len({r.id for r in rows}) == len(rows)
    assert sorted((r.tool_name, r.decision) for r in rows) == sorted(
        [("read_document", "allow"), ("search", "allow"), ("delete_document", "deny"),
         ("list_documents", "allow"), ("archive_document", "deny")] * 2)
    assert _physical_rows(audit_stack, trace_id) == (len(statuses), len(statuses))  # no copies awaiting a merge
    # Nothing was given up on: the retry schedule outlasted the outage.
    assert count_topic(bootstrap(audit_stack.cfg), DEFAULT_DLQ_TOPIC, settle=0.5) == dlq_before
