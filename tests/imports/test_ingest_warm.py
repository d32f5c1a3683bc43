"""Ingest imports aiokafka with its first connection, which the served app starts from its lifespan."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from functions.ingest.app import create_app
from functions.ingest.producer import EventProducer
from functions.ingest.settings import IngestSettings, parse_api_keys
from mcp_sentinel.cloudevents_binary import from_kafka_binary
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, encode_batch
from mcp_sentinel.envelope import new_envelope
from mcp_sentinel.kafka import ensure_topics
from tests.fixtures.kafka import KafkaStack, read_topic


async def test_lifespan_connects_before_the_first_event(kafka_stack: KafkaStack) -> None:
    topic = f"warm-{uuid.uuid4().hex[:8]}"
    ensure_topics([kafka_stack.bootstrap], [topic])
    keys = parse_api_keys("k#server=ns1/warm")
    settings = IngestSettings(brokers=(kafka_stack.bootstrap,), api_keys=keys, topic=topic)
    app = create_app(settings)
    producer: EventProducer = app.state.producer
    assert not producer.connected  # building the app connects nothing
    async with app.router.lifespan_context(app):
        [warm] = [t for t in asyncio.all_tasks() if t.get_name() == "kafka-warm"]
        assert await asyncio.wait_for(warm, 30) is True
        assert producer.connected  # warmed in the background, no request needed
        event = new_envelope("warm-test", "mcp.request", {"namespace": "ns1", "server": "warm"})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            r = await client.post("/events", content=encode_batch([event]),
                                  headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": "k"})
        assert r.status_code == 202, r.text
    assert not producer.connected  # closed with the app
    [record] = read_topic(kafka_stack.bootstrap, topic, 1, timeout=10)
    assert from_kafka_binary(record.headers, record.value).envelope.id == event.id


async def test_warm_against_a_dead_broker_is_false_and_quick() -> None:
    producer = EventProducer(["127.0.0.1:1"], timeout_ms=1500)
    t0 = time.monotonic()
    assert await producer.warm() is False
    assert time.monotonic() - t0 < 5 and not producer.connected
