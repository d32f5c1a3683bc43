"""Tracing setup shared by every service (upstream §10.2).

`setup_tracing()` builds an OpenTelemetry SDK `TracerProvider` for one service: OTLP/HTTP export
when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (otherwise spans are created, so trace ids exist and
propagate, but nothing is exported), and W3C `tracecontext` + `baggage` propagation. The
helpers move context in and out of HTTP headers and Kafka record headers (header names are
matched case-insensitively).

No import-time globals: the provider is returned to the caller (an app factory), which passes its
tracer around. `install_global=True` additionally sets it as the process-wide provider.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATED_HEADERS = ("traceparent", "tracestate", "baggage")


@functools.cache
def propagator() -> CompositePropagator:
    """W3C tracecontext + baggage, the only propagators the project uses (stateless, built once)."""
    return CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def setup_tracing(service_name: str, environ: Mapping[str, str], *, install_global: bool = False) -> TracerProvider:
    """A TracerProvider for `service_name` (`OTEL_SERVICE_NAME` overrides), exporting over OTLP/HTTP
    only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set."""
    name = environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint:
        # Imported only when exporting: it pulls in protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        traces_endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_endpoint)))
    if install_global:
        trace.set_tracer_provider(provider)
    return provider


def exporting(environ: Mapping[str, str]) -> bool:
    """Whether `setup_tracing(…, environ)` exports spans (hot paths skip optional spans otherwise)."""
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())


class _CaseInsensitiveGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        lk = key.lower()
        for k, v in carrier.items():
            if k.lower() == lk:
                return [v]
        return None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


class _DictSetter(Setter[MutableMapping[str, str]]):
    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        carrier[key] = value


_GETTER = _CaseInsensitiveGetter()
_SETTER = _DictSetter()


def extract_http(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Context:
    """The OTel context carried by HTTP headers (a mapping or `(name, value)` pairs)."""
    carrier = dict(headers.items()) if isinstance(headers, Mapping) else dict(headers)
    return propagator().extract(carrier, getter=_GETTER)


def inject_http(headers: MutableMapping[str, str] | None = None, context: Context | None = None) -> dict[str, str]:
    """W3C headers for the current (or given) context, added to `headers` and returned as a dict."""
    carrier: dict[str, str] = {}
    propagator().inject(carrier, context=context, setter=_SETTER)
    if headers is not None:
        headers.update(carrier)
    return carrier


def extract_kafka(headers: Sequence[tuple[str, bytes | None]] | None) -> Context:
    """The OTel context carried by Kafka record headers (`traceparent` etc., case-insensitive)."""
    wanted = [(k, v) for k, v in headers or () if k.lower() in PROPAGATED_HEADERS]
    carrier = {k: (v or b"").decode("utf-8", errors="replace") for k, v in wanted}
    return propagator().extract(carrier, getter=_GETTER)


def inject_kafka(context: Context | None = None) -> list[tuple[str, bytes]]:
    """Kafka record headers carrying the current (or given) context, sorted by key."""
    return sorted((k, v.encode()) for k, v in inject_http(context=context).items())


def trace_id_hex(span: Any) -> str:
    """The 32-hex trace id of a span (or `""` when it has no valid context)."""
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
