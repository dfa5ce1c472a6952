"""The embedded stack starts real servers on loopback and stops them by pid."""

from __future__ import annotations

import asyncio

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from driftline.embedded.stack import embedded_stack


def test_embedded_stack_serves_kafka_and_redis_then_stops_both_by_pid() -> None:
    with embedded_stack() as stack:
        client = redis.Redis.from_url(stack.redis_url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()

        async def roundtrip() -> bytes:
            producer = AIOKafkaProducer(bootstrap_servers=stack.broker_url)
            await producer.start()
            await producer.send_and_wait("roundtrip", b"hello")
            await producer.stop()
            consumer = AIOKafkaConsumer("roundtrip", bootstrap_servers=stack.broker_url, auto_offset_reset="earliest")
            await consumer.start()
            batch = await consumer.getmany(timeout_ms=10_000)
            await consumer.stop()
            return next(iter(batch.values()))[0].value

        assert asyncio.run(roundtrip()) == b"hello"
        pids = (stack.broker.proc, stack.redis.proc)
    assert all(proc.poll() is not None for proc in pids)
