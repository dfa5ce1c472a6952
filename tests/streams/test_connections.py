"""Log end offsets on the real embedded broker: the offset after the last record, whatever the record batches."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from driftline.streams.connections import kafka_kwargs, log_end_offsets
from driftline.streams.topics import ensure_topics

pytestmark = pytest.mark.integration


def test_log_end_offsets_count_every_record_of_multi_record_batches(settings):
    topic = settings.topic("labels")
    full, single, empty = (TopicPartition(topic, p) for p in range(3))

    async def ends() -> dict[TopicPartition, int]:
        await ensure_topics(settings, settings.broker_url)
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=50)
        await producer.start()
        try:
            for count in (50, 30):  # two batches of many records: Tansu's ListOffsets says 51
                await asyncio.gather(
                    *[await producer.send(topic, b"x", partition=full.partition) for _ in range(count)]
                )
            for _ in range(3):
                await producer.send_and_wait(topic, b"y", partition=single.partition)
        finally:
            await producer.stop()
        return await log_end_offsets(kafka_kwargs(settings, settings.broker_url), [full, single, empty], 10.0)

    assert asyncio.run(ends()) == {full: 80, single: 3, empty: 0}
