"""Crash safety of label learning (issue 5): kill -9 the worker mid-stream, restart it, learn every label once.

The model snapshot, the learned count and the consumed label offsets live in ONE checkpoint write, so across any
number of kill -9 the learner must end with exactly one update per unique valid label, every bad label on the
dead-letter topic with its reason, every event predicted, and a model equal to learning the labels once in order.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
from aiokafka import AIOKafkaProducer, ConsumerRecord

from driftline.contract import keys
from driftline.contract.records import (
    DLQ_ERROR_CLASS,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    RecordError,
    parse_label,
)
from driftline.contract.settings import Settings
from driftline.embedded.demo import interleave
from driftline.embedded.stack import free_port
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.learner import OnlineLearner, coerce_label
from driftline.streams.producer import message_key
from driftline.streams.publisher import MAX_REQUEST_BYTES
from driftline.streams.topics import ensure_topics
from tests.harness import WorkerProcess, prediction_ids, read_until

pytestmark = pytest.mark.integration

N_EVENTS = 6_000
LABEL_DELAY = 100
KILL_AT = (0.25, 0.5, 0.75)  # fractions of the valid labels learned
PUBLISH_RATE = 1500.0  # messages/s (events and labels)
WINDOW = 400  # events the publisher may run ahead of learning (besides the label delay)
PROGRESS_TIMEOUT = 120.0  # seconds without reaching the next kill point before the test gives up
LEARNED = "learned"


@dataclass
class LabelledStream:
    """What the test publishes: events, labels (good and bad) and the event features by id."""

    events: list[bytes]
    labels: list[bytes]
    features: dict[str, tuple[dict, bool]]


def labelled_stream(n: int, seed: int = 5) -> LabelledStream:
    """``n`` synthetic events, one label each, ~5 % duplicate labels, malformed labels and labels of unknown ids."""
    rng = random.Random(seed)
    pairs = list(synthetic_stream(n))
    events = [json.dumps(e).encode() for e, _ in pairs]
    labels: list[bytes] = []
    for i, (e, y) in enumerate(pairs):
        label = json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"] + 1}).encode()
        if i % 997 == 500:  # a label the binary model cannot take, before the real one
            labels.append(json.dumps({"event_id": e["event_id"], "label": "maybe", "ts": e["ts"]}).encode())
        labels.append(label)
        if rng.random() < 0.05:
            labels.append(label)  # the same label delivered twice
        if i % 1500 == 700:  # valid JSON, invalid record: no label / a nested label
            labels.append(json.dumps({"event_id": e["event_id"], "ts": e["ts"]}).encode())
            labels.append(json.dumps({"event_id": e["event_id"], "label": [y], "ts": e["ts"]}).encode())
    labels += [b'{"event_id": "ev-00000001", "label": tru', b"not json at all", b"\xff\xfe"]
    ghosts = ({"event_id": f"ghost-{k}", "label": True, "ts": 1_700_000_000_000} for k in range(5))
    labels += [json.dumps(ghost).encode() for ghost in ghosts]
    return LabelledStream(events, labels, {e["event_id"]: (e["features"], y) for e, y in pairs})


def expected_outcomes(records: list[ConsumerRecord], known: set[str]) -> dict[tuple[int, int], str]:
    """What each label record must become, in offset order: ``learned`` or the dead-letter error class."""
    learned: set[str] = set()
    outcome: dict[tuple[int, int], str] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        where = (record.partition, record.offset)
        try:
            label = parse_label(record.value)
        except RecordError as exc:
            outcome[where] = exc.error_class
            continue
        if label.event_id not in known:
            outcome[where] = "UnknownEvent"
        elif label.event_id in learned:
            outcome[where] = "DuplicateLabel"
        else:
            try:
                coerce_label("binary", label.label)
            except ValueError:
                outcome[where] = "LabelError"
                continue
            learned.add(label.event_id)
            outcome[where] = LEARNED
    return outcome


def learned_count(client: redis.Redis, settings: Settings) -> int:
    return int(client.hget(keys.learner(settings.redis_prefix, settings.model_name), "learned") or 0)


def dead_lettered_labels(records: list[ConsumerRecord], settings: Settings) -> dict[tuple[int, int], set[str]]:
    """Error classes of label dead letters by source (partition, offset); at-least-once, so de-duplicated."""
    out: dict[tuple[int, int], set[str]] = defaultdict(set)
    for record in records:
        headers = dict(record.headers)
        if headers.get("dlq.source.topic") != settings.topic("labels").encode():
            continue
        where = (int(headers[DLQ_SOURCE_PARTITION]), int(headers[DLQ_SOURCE_OFFSET]))
        out[where].add(headers[DLQ_ERROR_CLASS].decode())
    return out


async def publish_paced(
    settings: Settings, messages: Iterator[tuple[str, bytes]], rate: float, learned: Callable[[], int]
) -> None:
    """Publish the interleaved stream (events keyed by id, labels by model name) at about ``rate`` messages/s,
    never more than ``WINDOW`` events ahead of learning: a killed worker meets a small backlog, so every kill
    lands while labels are being learned at the stream's pace rather than during one catch-up burst."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, max_request_size=MAX_REQUEST_BYTES, linger_ms=5)
    await producer.start()
    try:
        loop = asyncio.get_running_loop()
        started, pending, events = loop.time(), [], 0
        for i, (kind, raw) in enumerate(messages):
            key = message_key(raw) if kind == "events" else settings.model_name.encode()
            pending.append(await producer.send(settings.topic(kind), raw, key=key))
            events += kind == "events"
            if i % 50 == 49:
                await asyncio.sleep(max(0.0, started + i / rate - loop.time()))
                while events - learned() > LABEL_DELAY + WINDOW and events < N_EVENTS:
                    await asyncio.sleep(0.05)
                    started += 0.05  # the pace resumes from here, without a burst
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def kill_and_restart(worker: WorkerProcess, client: redis.Redis, settings: Settings, valid: int) -> list[int]:
    """Kill -9 the worker once learning passes each fraction of ``KILL_AT`` and the running worker has learned
    something itself (plus jitter, to land anywhere in a batch); returns the learned counts at each kill."""
    rng, at_kill = random.Random(11), []
    loop = asyncio.get_running_loop()
    for fraction in KILL_AT:
        at_start, deadline = learned_count(client, settings), loop.time() + PROGRESS_TIMEOUT
        while (learned := learned_count(client, settings)) < fraction * valid or learned == at_start:
            assert worker.alive(), f"worker died on its own:\n{worker.log()[-3000:]}"
            assert loop.time() < deadline, f"no learning progress within {PROGRESS_TIMEOUT}s:\n{worker.log()[-3000:]}"
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        worker.kill()
        at_kill.append(learned_count(client, settings))
        worker.start()
    return at_kill


def test_worker_killed_three_times_mid_stream_learns_every_valid_label_exactly_once_and_predicts_every_event(
    settings, redis_client, tmp_path
):
    settings = settings.model_copy(
        update={
            "snapshot_every_labels": 200,  # registry snapshots (and hot reloads) happen between the kills
            "snapshot_min_interval_ms": 0,
            "join_grace_seconds": 3.0,  # labels of unknown ids are dead-lettered 3 s after they are read
            # a killed member leaves its groups after the session timeout: restarts take ~10 s instead of ~20 s
            "session_timeout_ms": 3000,
            "heartbeat_interval_ms": 300,
            "rebalance_timeout_ms": 3000,
        }
    )
    stream = labelled_stream(N_EVENTS)
    asyncio.run(ensure_topics(settings, settings.broker_url))
    # an explicit free /metrics port: the settings fixture's None is dropped from the env (default 9464 may be taken)
    worker = WorkerProcess(settings, tmp_path, DRIFTLINE_METRICS_PORT=str(free_port())).start()
    try:

        async def drive() -> list[int]:
            publishing = asyncio.create_task(
                publish_paced(
                    settings,
                    interleave(stream.events, stream.labels, LABEL_DELAY),
                    PUBLISH_RATE,
                    lambda: learned_count(redis_client, settings),
                )
            )
            kills = await kill_and_restart(worker, redis_client, settings, N_EVENTS)
            await publishing
            return kills

        at_kill = asyncio.run(drive())

        def done(seen: dict[str, list[ConsumerRecord]]) -> bool:
            letters = dead_lettered_labels(seen["dead-letter"], settings)
            return (
                len(seen["labels"]) >= len(stream.labels)
                and len(set(prediction_ids(seen["predictions"]))) >= N_EVENTS
                and learned_count(redis_client, settings) + len(letters) >= len(stream.labels)
            )

        out = asyncio.run(read_until(settings, ["predictions", "dead-letter", "labels"], done, timeout=150))
    finally:
        worker.stop()

    expected = expected_outcomes(out["labels"], set(stream.features))
    assert len(expected) == len(stream.labels), "every published label is on the labels topic"
    valid = sum(1 for o in expected.values() if o == LEARNED)
    assert valid == N_EVENTS
    predicted = prediction_ids(out["predictions"])
    print(
        f"\nkilled at learned={at_kill}; {len(predicted) - len(set(predicted))} duplicate predictions "
        f"(at-least-once) for {N_EVENTS} events; worker started {worker.starts} times"
    )
    assert len(at_kill) == len(KILL_AT) and worker.starts == len(KILL_AT) + 1
    assert 0 < at_kill[0] < at_kill[1] < at_kill[2] < valid, "every kill landed while a worker was learning"
    assert set(predicted) == set(stream.features), "no event is left without a prediction"

    assert learned_count(redis_client, settings) == valid, "every unique valid label is learned exactly once"
    letters = dead_lettered_labels(out["dead-letter"], settings)
    wanted = {where: {reason} for where, reason in expected.items() if reason != LEARNED}
    assert letters == wanted, "each bad label is dead-lettered with its reason, and no valid label is"
    reasons = {reason for classes in wanted.values() for reason in classes}
    assert {"DuplicateLabel", "UnknownEvent", "ValidationError", "JSONDecodeError", "LabelError"} <= reasons

    stored = redis_client.hget(keys.learner(settings.redis_prefix, settings.model_name), "checkpoint")
    learner = OnlineLearner.restore(stored, hmac_key=settings.keyring(), purpose=f"learner:{settings.model_name}")
    assert learner.learned == valid and learner.remembered_ids == valid
    replay, schema, _ = bootstrap_model()
    for record in sorted(out["labels"], key=lambda r: (r.partition, r.offset)):
        if expected[(record.partition, record.offset)] == LEARNED:
            features, y = stream.features[json.loads(record.value)["event_id"]]
            replay.learn_one(schema.prepare(features), y)
    probes = [schema.prepare(stream.features[f"ev-{i:08d}"][0]) for i in range(0, N_EVENTS, 97)]
    live = [learner.model.predict_proba_one(x)[True] for x in probes]
    once = [replay.predict_proba_one(x)[True] for x in probes]
    assert live == pytest.approx(once, rel=1e-9, abs=1e-12), "the model holds each label exactly once, in order"
    assert "Traceback" not in worker.log()
