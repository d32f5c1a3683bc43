"""Helpers shared by the ingest tests and others (their fixtures: tests/ingest/conftest.py)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from functions.ingest.app import create_app
from functions.ingest.settings import IngestSettings, parse_api_keys
from mcp_sentinel.kafka import ensure_topics
from tests.fixtures.kafka import KafkaStack, read_topic


class Harness:
    def __init__(self, stack: KafkaStack, *, event_spans: bool = True, **overrides: object) -> None:
        self.topic = f"t-{uuid.uuid4().hex[:8]}"
        ensure_topics([stack.bootstrap], [self.topic])
        # The codec tests write many servers with one key: unbound, as local development allows
        # (bindings are tested in test_bindings.py).
        base = {"brokers": (stack.bootstrap,), "topic": self.topic, "api_keys": parse_api_keys(KEY),
                "produce_timeout_ms": 4000, "allow_unbound_keys": True}
        base.update(overrides)
        self.settings = IngestSettings(**base)  # type: ignore[arg-type]
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.registry = CollectorRegistry()
        self.app = create_app(self.settings, tracer_provider=provider, registry=self.registry,
                              event_spans=event_spans)
        self.bootstrap = stack.bootstrap

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://ingest")

    def records(self, n: int) -> list:
        return read_topic(self.bootstrap, self.topic, n)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


class JWKS:
    """A real JWKS endpoint (stdlib HTTP server) and a signer for test tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        doc = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(doc)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def token(self, aud: str = "ingest", exp: float | None = None, iss: str = "https://idp", **extra: str) -> str:
        claims = {"sub": "gw", "aud": aud, "iss": iss, "exp": int(exp if exp is not None else time.time() + 60),
                  "namespace": "ns1", "server": "s1", **extra}
        claims = {k: v for k, v in claims.items() if v != "-"}  # "-" drops a claim
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})


KEY = "ingest-key-1"
