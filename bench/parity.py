"""`driftline bench parity`: the live prequential metric through Kafka against River's progressive validation.

Both sides see the same synthetic drifting events in the same order, start from the same bootstrap model and
get each label ``delay`` events late:

* ``offline_metric``: ``river.evaluate.progressive_val_score(dataset, model, Accuracy(), delay=delay)`` on the
  prepared features; River reveals the label of event ``i`` just before it predicts event ``i + delay``, so every
  prediction is made by a model that has learned all labels but the last ``delay - 1`` (River's delays 0 and 1
  are both "no delay");
* ``live_metric``: that same arrival order (``river.stream.simulate_qa``) published to ``events`` and ``labels``
  (one partition, so Kafka keeps the order) at ``pace_eps`` events/s, one worker process scoring and learning;
  the figure is the learner's prequential accuracy of what was *served* (from its checkpoint in Redis).

What "the same delay" means live: a label is learned as soon as it is read, but the scorer serves the last
registry snapshot it has hot-reloaded (one every ``snapshot_every_labels`` labels, checked every
``reload_check_seconds``), and scoring and learning run asynchronously. So a live prediction is made by a model
that misses a few more recent labels than River's. The bench measures this per event (``live_lag_events``: how
many earlier labels the serving version had not learned, from the version each prediction names and the
``labels_learned`` of that snapshot) and ``replayed_metric`` replays River's loop with exactly that lag per event:
it equals ``live_metric`` when the live path is exactly prequential, so any ratio below 1 comes from the lag.

Learning throughput: after the parity run, ``throughput_labels`` more events are scored, then their labels are
published at once; ``live_labels_per_s`` is learned labels per second from the first to the last checkpoint of
that burst (``live_labels_per_s_end_to_end``: from the first label published), against the in-process loops on
the same rows: ``inprocess_learner_labels_per_s`` (the worker's
:meth:`driftline.models.learner.OnlineLearner.learn`, no I/O), ``inprocess_learner_batch_labels_per_s``
(:meth:`~driftline.models.learner.OnlineLearner.learn_many` on batches of 500, as the worker learns) and
``inprocess_learn_one_per_s`` (River's bare ``learn_one``). The live figure includes what the worker
does per batch besides learning: the Redis join, the learning monitor, one or two checkpoint writes and, with
``snapshot_every_labels`` this low, a registry snapshot per batch.

Examples
--------
>>> arrival_order([({"x": 1.0}, True), ({"x": 2.0}, False), ({"x": 3.0}, True)], delay=2)
[('events', 0), ('events', 1), ('labels', 0), ('events', 2), ('labels', 1), ('labels', 2)]
>>> rows = [({"x": 0.0}, False), ({"x": 0.0}, False), ({"x": 0.0}, False), ({"x": 0.0}, True)]
>>> replayed_accuracy(rows, _Majority(), [0, 0, 1, 2]), replayed_accuracy(rows, _Majority(), [0, 1, 2, 3])
(0.25, 0.5)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from river import evaluate, metrics
from river import stream as river_stream

from driftline.contract import keys
from driftline.contract.settings import Settings
from driftline.embedded.demo import start_worker, worker_env
from driftline.embedded.stack import EmbeddedStack, embedded_stack, free_port, stop_process, wait_for_port
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.learner import OnlineLearner
from driftline.models.registry import ModelRegistry
from driftline.streams.connections import kafka_kwargs, redis_client
from driftline.streams.publisher import producer_for
from driftline.streams.topics import ensure_topics

MODEL = "default"
PACE_EPS = 400.0  # events/s published in the parity run (labels come on top)
SNAPSHOT_EVERY_LABELS = 10
RELOAD_CHECK_SECONDS = 0.05
THROUGHPUT_LABELS = 20_000
INPROCESS_BATCH = 500  # the worker's default batch size
WAIT_SECONDS = 300.0

Row = tuple[dict[str, Any], bool]


class _Majority:
    """A toy classifier for the doctests: predicts the most frequent label learned so far (True when none)."""

    def __init__(self) -> None:
        self.counts: Counter[bool] = Counter()

    def learn_one(self, x: dict[str, Any], y: bool) -> None:
        self.counts[y] += 1

    def predict_one(self, x: dict[str, Any]) -> bool:
        return self.counts[True] >= self.counts[False]


def arrival_order(dataset: Sequence[Row], delay: int) -> list[tuple[str, int]]:
    """The order River's progressive validation sees events and labels in: ``(topic, index)`` pairs."""
    return [("events" if y is None else "labels", i) for i, _, y in river_stream.simulate_qa(dataset, None, delay)]


def offline_accuracy(dataset: Sequence[Row], model: Any, delay: int) -> float:
    """River's own delayed progressive validation."""
    return float(evaluate.progressive_val_score(dataset, model, metrics.Accuracy(), delay=delay).get())


def replayed_accuracy(dataset: Sequence[Row], model: Any, learned_before: Sequence[int]) -> float:
    """Accuracy when event ``i`` is predicted by ``model`` after learning labels ``0 .. learned_before[i] - 1``."""
    metric, learned = metrics.Accuracy(), 0
    for i in sorted(range(len(dataset)), key=lambda k: learned_before[k]):
        while learned < learned_before[i]:
            model.learn_one(*dataset[learned])
            learned += 1
        metric.update(dataset[i][1], model.predict_one(dataset[i][0]))
    return float(metric.get())


def inprocess_rates(dataset: Sequence[Row], model: Any) -> tuple[float, float, float]:
    """Labels/s of the worker's learner code without I/O (one label at a time, and in batches of
    :data:`INPROCESS_BATCH` as the worker learns them), and of River's bare ``learn_one``, on the same rows."""
    served = [(model.predict_one(x), model.predict_proba_one(x)) for x, _ in dataset]
    rows = [
        (f"e{i}", x, y, pred, {str(k): v for k, v in proba.items()}, i)
        for i, ((x, y), (pred, proba)) in enumerate(zip(dataset, served, strict=True))
    ]
    learner = OnlineLearner(copy.deepcopy(model), "binary")
    started = time.perf_counter()
    for row in rows:
        learner.learn(*row)
    learner_rate = len(dataset) / (time.perf_counter() - started)
    batched = OnlineLearner(copy.deepcopy(model), "binary")
    started = time.perf_counter()
    for start in range(0, len(rows), INPROCESS_BATCH):
        batched.learn_many(rows[start : start + INPROCESS_BATCH])
    batched_rate = len(dataset) / (time.perf_counter() - started)
    bare = copy.deepcopy(model)
    started = time.perf_counter()
    for x, y in dataset:
        bare.learn_one(x, y)
    return learner_rate, batched_rate, len(dataset) / (time.perf_counter() - started)


def percentiles(values: Sequence[int]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {
        "mean": round(float(array.mean()), 1),
        "p50": float(np.percentile(array, 50)),
        "p99": float(np.percentile(array, 99)),
        "max": float(array.max()),
    }


class LiveRun:
    """One worker on the embedded stack, a producer feeding it, and a reader of its predictions."""

    def __init__(self, stack: EmbeddedStack, settings: Settings, hmac_key: str):
        self.stack, self.settings, self.hmac_key = stack, settings, hmac_key
        self.redis = redis_client(settings, stack.redis_url)
        self.registry = ModelRegistry(self.redis, hmac_key.encode(), prefix=settings.redis_prefix)
        self.producer: AIOKafkaProducer  # made in the running loop (aiokafka needs one)
        self.served: dict[str, dict[str, Any]] = {}
        self.reading = True

    def learned(self) -> int:
        return int(self.redis.hget(keys.learner(self.settings.redis_prefix, MODEL), "learned") or 0)

    def learner(self) -> OnlineLearner:
        blob = self.redis.hget(keys.learner(self.settings.redis_prefix, MODEL), "checkpoint")
        return OnlineLearner.restore(blob, hmac_key=self.hmac_key.encode(), purpose=f"learner:{MODEL}")

    async def read_predictions(self) -> None:
        """Keep the first prediction of every event (its version and served class) until stopped."""
        consumer = AIOKafkaConsumer(**kafka_kwargs(self.settings, self.stack.broker_url), enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(self.settings.topic("predictions"), 0)])
            await consumer.seek_to_beginning()
            while self.reading:
                for records in (await consumer.getmany(timeout_ms=100, max_records=10_000)).values():
                    for record in records:
                        value = json.loads(record.value)
                        self.served.setdefault(value["event_id"], value)
        finally:
            await consumer.stop()

    async def wait(self, what: str, done: Any, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {timeout}s; see {self.stack.workdir / 'worker.log'}")
            await asyncio.sleep(0.01)  # the learned count is one HGET; the other checks only count

    async def publish(self, messages: Sequence[tuple[str, bytes, bytes]], pace_eps: float | None = None) -> None:
        """Publish ``(topic, key, value)`` messages, events at about ``pace_eps`` per second when given."""
        started, pending, events = time.perf_counter(), [], 0
        for topic, key, value in messages:
            pending.append(await self.producer.send(self.settings.topic(topic), value, key=key))
            events += topic == "events"
            if pace_eps is not None and topic == "events" and events % 20 == 0:
                await asyncio.sleep(max(0.0, started + events / pace_eps - time.perf_counter()))
        await asyncio.gather(*pending)


def _event(event: dict[str, Any], tag: str = "") -> tuple[str, bytes, bytes]:
    event_id = f"{tag}{event['event_id']}"
    return "events", event_id.encode(), json.dumps({**event, "event_id": event_id}).encode()


def _label(event: dict[str, Any], y: bool, tag: str = "") -> tuple[str, bytes, bytes]:
    body = {"event_id": f"{tag}{event['event_id']}", "label": y, "ts": event["ts"] + 1}
    return "labels", MODEL.encode(), json.dumps(body).encode()


async def measure_live(
    run: LiveRun, pairs: list[tuple[dict, bool]], order: list[tuple[str, int]], extra: list[tuple[dict, bool]]
) -> dict[str, Any]:
    """The paced parity run, then the learning-throughput burst; returns the live figures."""
    reader = asyncio.create_task(run.read_predictions())
    run.producer = producer_for(kafka_kwargs(run.settings, run.stack.broker_url))
    await run.producer.start()
    try:
        await run.publish([_event(pairs[0][0], "warm-")])  # the worker has joined its groups and loaded v1
        await run.wait("the warm-up prediction", lambda: len(run.served) >= 1)
        messages = [_event(pairs[i][0]) if topic == "events" else _label(*pairs[i]) for topic, i in order]
        started = time.perf_counter()
        await run.publish(messages, PACE_EPS)
        await run.wait("every parity label learned", lambda: run.learned() >= len(pairs))
        parity_seconds = time.perf_counter() - started
        learner = run.learner()
        await run.wait("every parity prediction", lambda: len(run.served) >= 1 + len(pairs))
        figures = {"live_metric": learner.metrics()["accuracy"], "parity_seconds": round(parity_seconds, 1)}

        await run.publish([_event(e, "tp-") for e, _ in extra])
        await run.wait("every throughput event scored", lambda: len(run.served) >= 1 + len(pairs) + len(extra))
        base, labels = run.learned(), [_label(e, y, "tp-") for e, y in extra]
        published_at = time.perf_counter()
        publishing = asyncio.create_task(run.publish(labels))
        await run.wait("the first throughput checkpoint", lambda: run.learned() > base)
        first_at, first = time.perf_counter(), run.learned()
        await run.wait("every throughput label learned", lambda: run.learned() >= base + len(extra))
        last_at, last = time.perf_counter(), run.learned()
        await publishing
        figures["live_labels_per_s_end_to_end"] = (last - base) / (last_at - published_at)
        # first to last checkpoint (the first batch's wait for the broker is not learning); end to end when the
        # whole burst fitted between two polls
        figures["live_labels_per_s"] = (
            (last - first) / (last_at - first_at) if last > first else figures["live_labels_per_s_end_to_end"]
        )
        return figures
    finally:
        run.reading = False
        await reader
        await run.producer.stop()


def run(events: int = 20_000, delay: int = 100, stack: EmbeddedStack | None = None) -> dict[str, Any]:
    """Measure both sides in one invocation (on ``stack``, else a new embedded one); returns the JSON figures."""
    if events < 1 or delay < 1:
        raise ValueError("events and delay must be >= 1")
    pairs = list(synthetic_stream(events))  # concept and covariate drift half way: learning matters
    model, schema, task = bootstrap_model()
    dataset = [(schema.prepare(e["features"]), y) for e, y in pairs]
    offline = offline_accuracy(dataset, copy.deepcopy(model), delay)
    order = arrival_order(dataset, delay)
    extra_pairs = list(synthetic_stream(min(THROUGHPUT_LABELS, max(events, 1000)), seed=11))
    extra = [(schema.prepare(e["features"]), y) for e, y in extra_pairs]
    learner_rate, batched_rate, learn_one_rate = inprocess_rates(extra, model)

    hmac_key = secrets.token_hex(16)
    settings = Settings(topic_prefix=f"parity{uuid.uuid4().hex[:6]}.", partitions=1)
    with embedded_stack(key_prefix=settings.redis_prefix) if stack is None else contextlib.nullcontext(stack) as stack:
        asyncio.run(ensure_topics(settings, stack.broker_url))
        live = LiveRun(stack, settings, hmac_key)
        live.registry.register(MODEL, copy.deepcopy(model), schema=schema, task=task, note="bench parity: bootstrap")
        port = free_port()
        env = {
            **worker_env(settings, stack, hmac_key, port),
            "DRIFTLINE_PARTITIONS": "1",
            "DRIFTLINE_SNAPSHOT_EVERY_LABELS": str(SNAPSHOT_EVERY_LABELS),
            "DRIFTLINE_SNAPSHOT_MIN_INTERVAL_MS": "0",  # a version every SNAPSHOT_EVERY_LABELS labels at any pace
            "DRIFTLINE_RELOAD_CHECK_SECONDS": str(RELOAD_CHECK_SECONDS),
            # every version served stays readable: its labels_learned gives each prediction's lag
            "DRIFTLINE_KEEP_VERSIONS": str((events + len(extra_pairs)) // SNAPSHOT_EVERY_LABELS + 10),
        }
        worker = start_worker(env, stack.workdir / "worker.log")
        try:
            wait_for_port(port, timeout=60, proc=worker)
            figures = asyncio.run(measure_live(live, pairs, order, extra_pairs))
        finally:
            stop_process(worker)
        served = [live.served[e["event_id"]] for e, _ in pairs]
        versions = {v: live.registry.get(MODEL, v) for v in {s["model_version"] for s in served}}
        learned_by = {v: int(meta.data_summary.get("labels_learned", 0)) for v, meta in versions.items()}
    learned_before = [learned_by[s["model_version"]] for s in served]
    live_lag = [i - n for i, n in enumerate(learned_before)]
    from_predictions = float(np.mean([s["prediction"] == y for s, (_, y) in zip(served, pairs, strict=True)]))
    replayed = replayed_accuracy(dataset, copy.deepcopy(model), learned_before)
    return {
        "events": events,
        "delay": delay,
        "metric": "accuracy",
        "live_metric": round(figures["live_metric"], 5),
        "offline_metric": round(offline, 5),
        "ratio": round(figures["live_metric"] / offline, 4),
        "live_metric_from_predictions": round(from_predictions, 5),
        "replayed_metric": round(replayed, 5),
        "offline_lag_events": max(delay - 1, 0),
        "live_lag_events": percentiles(live_lag),
        "versions_served": len(versions),
        "pace_eps": PACE_EPS,
        "parity_seconds": figures["parity_seconds"],
        "snapshot_every_labels": SNAPSHOT_EVERY_LABELS,
        "reload_check_seconds": RELOAD_CHECK_SECONDS,
        "partitions": 1,
        "throughput_labels": len(extra),
        "live_labels_per_s": round(figures["live_labels_per_s"], 1),
        "live_labels_per_s_end_to_end": round(figures["live_labels_per_s_end_to_end"], 1),
        "inprocess_learner_labels_per_s": round(learner_rate, 1),
        "inprocess_learner_batch_labels_per_s": round(batched_rate, 1),
        "inprocess_learn_one_per_s": round(learn_one_rate, 1),
        "learning_ratio": round(figures["live_labels_per_s"] / learner_rate, 3),
    }
