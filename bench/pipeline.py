"""`driftline bench pipeline`: the full Kafka -> Faust worker -> validate -> score -> Kafka path against an
in-process River loop on the same events with the same model, plus the limits of the layers below us.

Figures:
* ``inprocess_eps``: ``predict_proba_one`` then ``learn_one`` per event, in one Python loop (median of
  :data:`INPROCESS_RUNS` runs: on a shared 2-core machine one run varied from 26k to 43k events/s);
* ``pipeline_eps``: events published as fast as possible, one worker process, until every prediction is back;
* ``worker_cpu_us_per_event``: CPU time (user + system) the worker process spent per event while
  ``pipeline_eps`` was measured (Linux ``/proc``; null elsewhere): its cost, whatever else the machine runs;
* ``p50_ms``/``p99_ms``: event published -> prediction received, publishing at half of ``pipeline_eps``;
* ``raw_consume_eps``: a plain aiokafka ``getmany`` loop (JSON decode included) over the same topic;
* ``faust_consume_eps``: a Faust agent that only counts (see bench/faust_consume.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from driftline.contract.settings import Settings
from driftline.embedded.demo import start_worker, worker_env
from driftline.embedded.stack import (
    CHILD_PYTHON,
    EmbeddedStack,
    embedded_stack,
    free_port,
    stop_process,
    wait_for_port,
)
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.streams.topics import ensure_topics

WARMUP = 1000
INPROCESS_RUNS = 3


def inprocess_eps(events: list[dict[str, Any]], labels: list[bool]) -> float:
    """Plain River loop over the same events: predict then learn, one at a time."""
    model, schema, _ = bootstrap_model()
    started = time.perf_counter()
    for event, label in zip(events, labels, strict=True):
        x = schema.prepare(event["features"])
        model.predict_proba_one(x)
        model.learn_one(x, label)
    return len(events) / (time.perf_counter() - started)


class Run:
    """One worker on the embedded stack, and clients to feed it and read its predictions."""

    def __init__(self, stack: EmbeddedStack, settings: Settings):
        self.stack, self.settings = stack, settings
        self.producer = AIOKafkaProducer(bootstrap_servers=stack.broker_url, linger_ms=5, max_batch_size=256 * 1024)
        self.consumer = AIOKafkaConsumer(
            settings.topic("predictions"),
            bootstrap_servers=stack.broker_url,
            group_id=f"bench-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
            fetch_max_wait_ms=10,
        )
        self.received: dict[bytes, float] = {}

    async def publish(self, messages: list[tuple[bytes, bytes]], rate: float | None = None) -> dict[bytes, float]:
        """Publish ``(event_id, payload)`` pairs (keyed by event id); returns when each was sent."""
        sent_at: dict[bytes, float] = {}
        futures = []
        topic = self.settings.topic("events")
        started = time.perf_counter()
        for i, (key, payload) in enumerate(messages):
            if rate is not None:
                delay = i / rate - (time.perf_counter() - started)
                if delay > 0:
                    await asyncio.sleep(delay)
            sent_at[key] = time.perf_counter()
            futures.append(await self.producer.send(topic, payload, key=key))
        await asyncio.gather(*futures)
        return sent_at

    async def receive(self, count: int, timeout: float = 300.0) -> None:
        """Read predictions until ``count`` distinct events have one."""
        deadline = time.perf_counter() + timeout
        while len(self.received) < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {len(self.received)}/{count} predictions within {timeout}s")
            batch = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    self.received.setdefault(record.key, now)  # predictions keep the event's key


def payloads(events: list[dict[str, Any]], tag: str) -> list[tuple[bytes, bytes]]:
    """``(key, payload)`` pairs, encoded before any clock starts."""
    return [
        (f"{tag}-{e['event_id']}".encode(), json.dumps({**e, "event_id": f"{tag}-{e['event_id']}"}).encode())
        for e in events
    ]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (None without Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_pipeline(
    stack: EmbeddedStack, settings: Settings, events: list[dict[str, Any]], worker_pid: int
) -> dict[str, float | None]:
    run = Run(stack, settings)
    await run.producer.start()
    await run.consumer.start()
    try:
        warm, full = payloads(events[:WARMUP], "warm"), payloads(events, "max")
        await run.publish(warm)
        await run.receive(WARMUP)  # the worker has joined its group and loaded the model
        started, cpu_before = time.perf_counter(), cpu_seconds(worker_pid)
        await asyncio.gather(run.publish(full), run.receive(WARMUP + len(events)))
        pipeline = len(events) / (time.perf_counter() - started)
        cpu_after = cpu_seconds(worker_pid)
        cpu_us = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / len(events) * 1e6
        count = min(len(events), max(2000, int(pipeline / 2 * 5)))  # ~5 s at half of the maximum rate
        paced = payloads(events[:count], "lat")
        sent_at, _ = await asyncio.gather(
            run.publish(paced, rate=pipeline / 2),
            run.receive(WARMUP + len(events) + count),
        )
        latencies = np.array([(run.received[i] - t) * 1000 for i, t in sent_at.items()])
        return {
            "pipeline_eps": round(pipeline, 1),
            "worker_cpu_us_per_event": None if cpu_us is None else round(cpu_us, 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "latency_events": count,
            "latency_rate_eps": round(pipeline / 2, 1),
        }
    finally:
        await run.consumer.stop()
        await run.producer.stop()


async def raw_consume_eps(stack: EmbeddedStack, topic: str, n: int) -> float:
    """A plain aiokafka getmany loop (JSON decode included) over ``n`` messages of ``topic``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.broker_url,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        count, started = 0, 0.0
        while count < n:
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                if not started:
                    started = time.perf_counter()
                for record in records:
                    json.loads(record.value)
                count += len(records)
        return count / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def faust_consume_eps(stack: EmbeddedStack, topic: str, n: int) -> float:
    result = stack.workdir / "faust_consume.json"
    command = [*CHILD_PYTHON, "-m", "driftline.bench.faust_consume", stack.broker_url, topic, str(n), str(result)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if not result.exists():
        raise RuntimeError(f"the Faust consumer wrote no result: {out.stderr[-500:]}")
    return json.loads(result.read_text())["faust_consume_eps"]


def run(events: int = 50_000) -> dict[str, Any]:
    """Measure both sides of the ratio (and the reference loops) in one invocation; returns the JSON figures."""
    pairs = list(synthetic_stream(events + WARMUP, drift_at=events + WARMUP))
    stream = [e for e, _ in pairs]
    inprocess = statistics.median(
        inprocess_eps(stream[:events], [y for _, y in pairs[:events]]) for _ in range(INPROCESS_RUNS)
    )
    settings = Settings(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    with embedded_stack(key_prefix=settings.redis_prefix) as stack:
        asyncio.run(ensure_topics(settings, stack.broker_url))
        port = free_port()
        worker = start_worker(worker_env(settings, stack, secrets.token_hex(16), port), stack.workdir / "worker.log")
        try:
            wait_for_port(port, timeout=60, proc=worker)
            pipeline = asyncio.run(measure_pipeline(stack, settings, stream[:events], worker.pid))
        finally:
            stop_process(worker)
        topic = settings.topic("events")
        raw = asyncio.run(raw_consume_eps(stack, topic, events))
        faust_eps = faust_consume_eps(stack, topic, events)
    return {
        "events": events,
        "inprocess_eps": round(inprocess, 1),
        **pipeline,
        "ratio": round(pipeline["pipeline_eps"] / inprocess, 3),
        "raw_consume_eps": round(raw, 1),
        "faust_consume_eps": faust_eps,
        "partitions": settings.partitions,
        "batch_size": settings.batch_size,
    }
