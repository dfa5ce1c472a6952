"""Publisher.send_many on the real embedded broker: per-partition record batches (or librdkafka's, with ``bulk``)
put every record where ``producer.send`` would, in order, and its acknowledgement covers them all."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from driftline.streams.confluent_producer import ConfluentProducer
from driftline.streams.publisher import Publisher
from driftline.streams.topics import ensure_topics
from tests.harness import read_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("client", ["aiokafka", "confluent"])
def test_send_many_places_each_key_like_the_default_partitioner_keeps_order_and_loses_nothing(settings, client):
    keys = [f"key-{i % 97}".encode() for i in range(5000)]
    items = [(key, b"x" * (i % 700) + str(i).encode()) for i, key in enumerate(keys)]  # several batches each

    async def send() -> None:
        await ensure_topics(settings, settings.broker_url)
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, max_batch_size=64 * 1024)
        await producer.start()
        bulk = ConfluentProducer({"bootstrap.servers": settings.broker_url}) if client == "confluent" else None
        if bulk is not None:
            await bulk.start()
        try:
            publisher = Publisher(producer, bulk=bulk)
            await publisher.send_many(settings.topic("predictions"), items[:2500])
            await publisher.send_many(settings.topic("predictions"), items[2500:])
            await publisher.flush()
        finally:
            await producer.stop()
            if bulk is not None:
                await bulk.stop()

    asyncio.run(send())
    records = asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= 5000))
    got = records["predictions"]
    assert len(got) == 5000
    for record in got:
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % settings.partitions
    by_key: dict[bytes, list[int]] = {}
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(int(record.value.lstrip(b"x")))
    assert all(values == sorted(values) for values in by_key.values()), "each key's records in sending order"
    assert sorted(v for values in by_key.values() for v in values) == list(range(5000))


def test_send_many_sends_its_batches_at_once_not_after_the_producers_linger(settings):
    """The batches send_many builds are complete: they go out at once instead of lingering ``linger_ms`` for
    records that never come (5 ms on every prediction the worker sends). With a 60 s linger, the acknowledgement
    comes within 20 s only when the batches are sent without it."""

    async def send() -> None:
        await ensure_topics(settings, settings.broker_url)
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=60_000)
        await producer.start()
        try:
            publisher = Publisher(producer)
            await publisher.send_many(settings.topic("predictions"), [(f"k{i}".encode(), b"v") for i in range(50)])
            await asyncio.wait_for(publisher.acknowledged(), 20)
        finally:
            await producer.stop()

    asyncio.run(send())
