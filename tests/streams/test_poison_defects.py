"""The defects of issue 11's message path, one test each on the real stack (Tansu, redis-server, a worker process):
each failed before its fix."""

from __future__ import annotations

import asyncio
import json
import pickle
import time
from collections.abc import Callable

import pytest
import redis
from aiokafka import AIOKafkaProducer

from driftline.contract import keys
from driftline.contract.records import DLQ_ERROR_CLASS, DLQ_ERROR_MESSAGE, DLQ_SOURCE_TOPIC
from driftline.contract.settings import Settings
from driftline.models.bootstrap import bootstrap_model
from driftline.models.registry import ModelRegistry
from driftline.streams.topics import ensure_topics
from tests.harness import WorkerProcess, event, prediction_ids, publish, read_until
from tests.strategies import NOW_MS

pytestmark = pytest.mark.integration

YEAR_9226_MS = 228_455_942_400_000  # 9226-01-01T00:00:00Z
TEN_YEARS_MS = 10 * 365 * 86_400_000
LABEL_TS = 1_700_000_001_000  # within the label TTL of tests.harness.event(i), at 1_700_000_000_000 + i


def learned(client: redis.Redis, settings: Settings) -> int:
    return int(client.hget(keys.learner(settings.redis_prefix, settings.model_name), "learned") or 0)


def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll ``condition`` (a Redis read) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def label(event_id: str, ts: int = LABEL_TS, value: bool = True) -> bytes:
    return json.dumps({"event_id": event_id, "label": value, "ts": ts}).encode()


def label_letters(seen: dict, settings: Settings) -> list:
    topic = settings.topic("labels").encode()
    return [r for r in seen["dead-letter"] if dict(r.headers)[DLQ_SOURCE_TOPIC] == topic]


def scored(settings: Settings, ids: set[str]) -> None:
    asyncio.run(read_until(settings, ["predictions"], lambda seen: ids <= set(prediction_ids(seen["predictions"]))))


def test_a_label_dated_9226_does_not_make_the_learner_forget_what_it_learned(settings, redis_client, tmp_path):
    """The window is opened to the year 9226 so that the label reaches the learner: its own clock decides."""
    settings = settings.model_copy(update={"max_ts_future_seconds": 1e12})
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        future = json.dumps({"event_id": "future", "ts": YEAR_9226_MS, "features": {"salary": 1.0}}).encode()
        asyncio.run(publish(settings, "events", [(None, event(i)) for i in range(100)] + [(None, future)]))
        scored(settings, {f"e{i}" for i in range(100)} | {"future"})
        asyncio.run(publish(settings, "labels", [(None, label(f"e{i}")) for i in range(100)]))
        until(lambda: learned(redis_client, settings) >= 100)
        asyncio.run(publish(settings, "labels", [(None, label("future", YEAR_9226_MS))]))
        until(lambda: learned(redis_client, settings) >= 101)
        asyncio.run(publish(settings, "labels", [(None, label(f"e{i}")) for i in range(100)]))  # sent again
        out = asyncio.run(read_until(settings, ["dead-letter"], lambda seen: len(label_letters(seen, settings)) >= 100))
        assert worker.alive()
    finally:
        worker.stop()
    reasons = {dict(r.headers)[DLQ_ERROR_CLASS] for r in label_letters(out, settings)}
    assert learned(redis_client, settings) == 101, "0 of the 100 labels sent again learned twice"
    assert reasons == {b"DuplicateLabel"} and len(label_letters(out, settings)) == 100


def test_hostile_names_timestamps_and_magnitudes_stop_neither_scoring_nor_learning(settings, redis_client, tmp_path):
    """The issue's poison pills, then valid traffic; and a reload timer faster than the worker's start."""
    settings = settings.model_copy(update={"reload_check_seconds": 0.05, "join_grace_seconds": 2.0})
    poison_events = [
        b'{"event_id":"p1","ts":1,"model":"bad name","features":{}}',
        b'{"event_id":"p2","ts":1,"model":"a:b","features":{}}',
        '{"event_id":"p3","ts":1,"model":"modèle","features":{}}'.encode(),
        b'{"event_id":"p4","ts":1,"features":{"salary":1' + b"0" * 400 + b"}}",
        b'{"event_id":"p5","ts":1e300,"features":{"salary":1.0}}',
        b'{"event_id":"p6","ts":10000000000000000000000000,"features":{"salary":1.0}}',
    ]
    poison_labels = [
        json.dumps({"event_id": "e0", "label": True, "ts": NOW_MS, "model": "bad name"}).encode(),
        label("e1", ts=YEAR_9226_MS),
        json.dumps({"event_id": "e2", "label": 10**400, "ts": NOW_MS}).encode(),
    ]
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", [(None, p) for p in poison_events]))
        asyncio.run(publish(settings, "events", [(None, event(i)) for i in range(50)]))
        scored(settings, {f"e{i}" for i in range(50)})
        asyncio.run(publish(settings, "labels", [(None, p) for p in poison_labels]))
        asyncio.run(send_with_timestamp(settings, "labels", label("never-scored"), NOW_MS + TEN_YEARS_MS))
        asyncio.run(publish(settings, "labels", [(None, label(f"e{i}")) for i in range(3, 50)]))
        out = asyncio.run(
            read_until(
                settings,
                ["dead-letter"],
                lambda seen: learned(redis_client, settings) >= 47 and len(seen["dead-letter"]) >= 10,
                timeout=90,
            )
        )
        assert worker.alive(), "the worker survived every poison pill and its reload timer's start-up race"
    finally:
        worker.stop()
    reasons = {r.value: dict(r.headers)[DLQ_ERROR_MESSAGE].decode() for r in out["dead-letter"]}
    assert set(poison_events) <= set(reasons), "every poison event is dead-lettered"
    assert set(poison_labels) <= set(reasons), "every poison label is dead-lettered"
    assert "model name is" in reasons[poison_events[0]] and "float64" in reasons[poison_events[3]]
    assert "outside the accepted window" in reasons[poison_labels[1]]
    assert "no scored event 'never-scored'" in reasons[label("never-scored")], "no ten-year wait for its event"
    assert learned(redis_client, settings) == 47, "valid labels after the poison ones are learned"
    assert worker.starts == 1 and "Traceback" not in worker.log()


async def send_with_timestamp(settings: Settings, topic: str, value: bytes, timestamp_ms: int) -> None:
    """Publish one message whose Kafka timestamp the producer sets (CreateTime)."""
    await ensure_topics(settings, settings.broker_url)
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url)
    await producer.start()
    try:
        await (await producer.send(settings.topic(topic), value, timestamp_ms=timestamp_ms))
    finally:
        await producer.stop()


def test_two_refused_versions_in_a_row_leave_the_worker_serving_the_last_good_one(settings, redis_client, tmp_path):
    """Current and previous blobs refused (e.g. after a key rotation), no learner checkpoint yet: the worker
    neither exits nor dead-letters every event; it scores and learns with v1 and raises integrity alerts."""
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    model, schema, task = bootstrap_model(samples=500)
    for parent in (None, 1, 2):
        registry.register(settings.model_name, model, schema=schema, task=task, parent=parent)
    for version in (2, 3):
        redis_client.set(
            keys.model(settings.redis_prefix, settings.model_name, f"blob:{version}"), pickle.dumps("forged")
        )
    worker = WorkerProcess(settings.model_copy(update={"join_grace_seconds": 2.0}), tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", [(None, event(i)) for i in range(100)]))
        out = asyncio.run(
            read_until(
                settings,
                ["predictions", "alerts"],
                lambda seen: len(seen["predictions"]) >= 100 and len(seen["alerts"]) >= 1,
            )
        )
        asyncio.run(publish(settings, "labels", [(None, label(f"e{i}")) for i in range(100)]))
        until(lambda: learned(redis_client, settings) >= 100)
        assert worker.alive(), "a refused rollback target must not stop the worker"
    finally:
        worker.stop()
    assert {json.loads(r.value)["model_version"] for r in out["predictions"]} == {1}
    integrity = [a for a in map(lambda r: json.loads(r.value), out["alerts"]) if a["kind"] == "model_integrity"]
    assert {a["model_version"] for a in integrity} >= {3} and "failed" in integrity[0]["action"]
    assert learned(redis_client, settings) == 100
    assert worker.starts == 1
