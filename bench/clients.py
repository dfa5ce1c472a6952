"""`driftline bench clients`: the Kafka client for the worker's hot path, aiokafka against confluent-kafka.

Both clients do what the scorer's source and sink do, on the embedded broker, in this process, one after the
other, :data:`ROUNDS` times interleaved (medians reported):

* ``consume``: read ``events`` pre-loaded messages of a 4-partition topic in a consumer group, batches of up to
  500 (aiokafka ``getmany``; confluent-kafka ``consume`` in a helper thread, as an asyncio service would);
* ``produce``: send ``events`` keyed records of ~200 bytes in batches of 500 and wait for every batch's
  acknowledgements (aiokafka: one record batch per partition with ``send_batch``, as ``Publisher.send_many``;
  confluent-kafka: ``produce`` with a delivery callback and a poll thread), ``acks=all``, murmur2 partitions.

Figures per client and side: events/s and CPU µs per event (this process's user + system time: the client's
threads included, the broker's not).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from driftline.bench.peers import check_installed
from driftline.contract.settings import Settings
from driftline.embedded.stack import embedded_stack
from driftline.models.bootstrap import synthetic_stream
from driftline.streams.partitioning import default_partitions
from driftline.streams.topics import ensure_topics

ROUNDS = 3
BATCH = 500


def _cpu() -> float:
    return time.process_time()


async def aiokafka_consume(broker: str, topic: str, n: int) -> tuple[float, float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker,
        group_id=f"c-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        count, started, cpu = 0, 0.0, 0.0
        while count < n:
            fetched = await consumer.getmany(timeout_ms=50, max_records=BATCH)
            if fetched and not started:
                started, cpu = time.perf_counter(), _cpu()
            for records in fetched.values():
                for r in records:
                    _ = (r.value, r.key, r.offset)
                count += len(records)
        return n / (time.perf_counter() - started), (_cpu() - cpu) / n * 1e6
    finally:
        await consumer.stop()


async def confluent_consume(broker: str, topic: str, n: int) -> tuple[float, float]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": f"c-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe([topic])
    loop = asyncio.get_running_loop()
    try:
        count, started, cpu = 0, 0.0, 0.0
        while count < n:
            messages = await loop.run_in_executor(None, consumer.consume, BATCH, 0.05)
            if messages and not started:
                started, cpu = time.perf_counter(), _cpu()
            for m in messages:
                _ = (m.value(), m.key(), m.offset())
            count += len(messages)
        return n / (time.perf_counter() - started), (_cpu() - cpu) / n * 1e6
    finally:
        consumer.close()


async def aiokafka_produce(broker: str, topic: str, items: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        started, cpu = time.perf_counter(), _cpu()
        previous: asyncio.Future | None = None
        for i in range(0, len(items), BATCH):
            chunk = items[i : i + BATCH]
            batches: dict[int, Any] = {}
            futures = []
            for (key, value), p in zip(chunk, default_partitions([k for k, _ in chunk], partitions), strict=True):
                batch = batches.get(p)
                if batch is None:
                    batch = batches[p] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=p))
                    batch = batches[p] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for p, batch in batches.items():
                futures.append(await producer.send_batch(batch, topic, partition=p))
            if previous is not None:
                await previous
            previous = asyncio.gather(*futures)
        if previous is not None:
            await previous
        return len(items) / (time.perf_counter() - started), (_cpu() - cpu) / len(items) * 1e6
    finally:
        await producer.stop()


async def confluent_produce(broker: str, topic: str, items: list[tuple[bytes, bytes]]) -> tuple[float, float]:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker, "acks": "all", "linger.ms": 5, "partitioner": "murmur2_random"})
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            producer.poll(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        started, cpu = time.perf_counter(), _cpu()
        previous: asyncio.Future | None = None
        for i in range(0, len(items), BATCH):
            chunk = items[i : i + BATCH]
            done = loop.create_future()
            left = [len(chunk)]

            def delivered(err: Any, msg: Any, done: asyncio.Future = done, left: list[int] = left) -> None:
                left[0] -= 1
                if left[0] == 0:
                    loop.call_soon_threadsafe(done.set_result, None)

            for key, value in chunk:
                producer.produce(topic, value, key, on_delivery=delivered)
            if previous is not None:
                await previous
            previous = done
        if previous is not None:
            await previous
        return len(items) / (time.perf_counter() - started), (_cpu() - cpu) / len(items) * 1e6
    finally:
        stop.set()
        poller.join()
        producer.flush()


def run(events: int = 60_000) -> dict[str, Any]:
    check_installed(["raw_confluent"])  # confluent-kafka
    stream = [e for e, _ in synthetic_stream(events, drift_at=events)]
    items = [(e["event_id"].encode(), orjson.dumps(e)) for e in stream]
    results: dict[str, dict[str, list[float]]] = {}

    def record(name: str, figures: tuple[float, float]) -> None:
        side = results.setdefault(name, {"eps": [], "cpu_us_per_event": []})
        side["eps"].append(figures[0])
        side["cpu_us_per_event"].append(figures[1])

    with embedded_stack(key_prefix="clients") as stack:
        broker = stack.broker_url
        for _ in range(ROUNDS):
            settings = Settings(topic_prefix=f"clients{uuid.uuid4().hex[:8]}.")
            topics = [settings.topic("events"), settings.topic("out-a"), settings.topic("out-c")]
            asyncio.run(ensure_topics(settings, broker, topics))
            record("aiokafka_produce", asyncio.run(aiokafka_produce(broker, topics[1], items)))
            record("confluent_produce", asyncio.run(confluent_produce(broker, topics[2], items)))
            asyncio.run(confluent_produce(broker, topics[0], items))  # the consumers' input
            record("aiokafka_consume", asyncio.run(aiokafka_consume(broker, topics[0], events)))
            record("confluent_consume", asyncio.run(confluent_consume(broker, topics[0], events)))
    return {
        "events": events,
        "rounds": ROUNDS,
        **{
            name: {k: round(statistics.median(v), 1) for k, v in figures.items()}
            for name, figures in sorted(results.items())
        },
    }
