"""Telemetry helpers: when spans are exported, and W3C context in and out of Kafka headers."""

from __future__ import annotations

from opentelemetry import trace

from mcp_sentinel import telemetry


def test_exporting_only_with_a_non_blank_endpoint():
    assert telemetry.exporting({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert not telemetry.exporting({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "})
    assert not telemetry.exporting({})


def test_kafka_headers_round_trip_the_span_context():
    provider = telemetry.setup_tracing("t", {})
    with provider.get_tracer("t").start_as_current_span("s") as span:
        headers = telemetry.inject_kafka()
    assert [k for k, _ in headers] == ["traceparent"]
    ctx = trace.get_current_span(telemetry.extract_kafka([("TraceParent", headers[0][1]), ("other", None)]))
    assert ctx.get_span_context().trace_id == span.get_span_context().trace_id
    assert ctx.get_span_context().span_id == span.get_span_context().span_id
    assert not trace.get_current_span(telemetry.extract_kafka(None)).get_span_context().is_valid
