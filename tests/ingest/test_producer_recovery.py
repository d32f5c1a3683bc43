"""Ingest's producer across a broker restart: a failed request is a clear 503, nothing acked is lost."""

from __future__ import annotations

import json
import time

from functions.ingest.producer import EventProducer, ProduceError
from mcp_sentinel.cloudevents_binary import from_kafka_binary, to_kafka_binary
from mcp_sentinel.cloudevents_codec import BATCH_CONTENT_TYPE, encode_batch
from mcp_sentinel.envelope import new_envelope
from tests.fixtures.kafka import KafkaStack, count_topic, read_topic
from tests.helpers.ingest import KEY, Harness


def ev(i: int):
    return new_envelope("mcp-gateway", "mcp.request", {"namespace": "ns1", "server": f"r{i % 4}", "i": i})


async def test_broker_restart_answers_503_or_202_and_every_acked_event_is_stored(kafka_stack: KafkaStack):
    h = Harness(kafka_stack, produce_timeout_ms=4000)
    acked: list[int] = []
    statuses: list[int] = []
    async with h.client() as c:
        async def post(i: int) -> int:
            r = await c.post("/events", content=encode_batch([ev(i)]),
                             headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": KEY})
            assert r.status_code in (202, 503), r.text
            if r.status_code == 503:
                assert r.json()["error"] == "kafka_unavailable"
            else:
                acked.append(i)
            statuses.append(r.status_code)
            return r.status_code

        assert await post(0) == 202  # the producer is connected before the restart
        kafka_stack.restart_broker()
        # tansu 0.6.0 loses a partition's end offset on restart until something fetches it, and
        # the next produce then overwrites offset 0 (tests/kafka/test_broker.py pins that bug).
        # In the stack the dispatcher fetches at once; here a reader plays its part.
        read_topic(h.bootstrap, h.topic, 1, timeout=15)
        i, deadline = 1, time.monotonic() + 60
        while time.monotonic() < deadline:
            if await post(i) == 202 and len(acked) >= 4:
                break
            i += 1
    assert len(acked) >= 4, statuses
    stored = [json.loads(r.value)["i"] for r in read_topic(h.bootstrap, h.topic, len(acked), timeout=30)]
    # Every 202 is in Kafka (the data survived the restart through s3rver); a 503'd event may or may
    # not be there (at least once: the caller retries it with the same id).
    assert set(acked) <= set(stored), statuses
    assert count_topic(h.bootstrap, h.topic, settle=1.0) == len(stored)


async def test_send_all_to_a_dead_broker_raises_produce_error_quickly():
    producer = EventProducer(["127.0.0.1:1"], timeout_ms=1500)
    t0 = time.monotonic()
    try:
        await producer.send_all("t", [to_kafka_binary(ev(1))])
    except ProduceError as exc:
        assert "kafka_unavailable" in str(exc) and "127.0.0.1:1" in str(exc)
    else:
        raise AssertionError("produce to a dead broker must fail")
    finally:
        await producer.close()
    assert time.monotonic() - t0 < 5


async def test_records_keep_per_key_order_across_several_record_batches(kafka_stack: KafkaStack):
    # Larger than one 256 KiB record batch per partition: order must hold across batch boundaries.
    h = Harness(kafka_stack)
    events = [new_envelope("mcp-gateway", "mcp.request", {"namespace": "ns1", "server": "big", "i": i,
                                                           "pad": "x" * 1500}) for i in range(400)]
    async with h.client() as c:
        r = await c.post("/events", content=encode_batch(events),
                         headers={"content-type": BATCH_CONTENT_TYPE, "x-api-key": KEY})
    assert r.status_code == 202 and r.json()["accepted"] == 400
    recs = sorted(read_topic(h.bootstrap, h.topic, 400, timeout=30), key=lambda x: x.offset)
    assert len({x.partition for x in recs}) == 1
    assert [json.loads(x.value)["i"] for x in recs] == list(range(400))
    assert [from_kafka_binary(x.headers, x.value).envelope.id for x in recs] == [e.id for e in events]
