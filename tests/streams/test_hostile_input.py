"""No message can stop a service (issue 11): hostile values in every field of events and labels, on one real worker
(Tansu, redis-server, ``driftline worker``), each become exactly one prediction, one learned label or one dead
letter with a reason, and the worker goes on scoring and learning the valid ones after them."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import pytest
import redis
from hypothesis import strategies as st

from driftline.contract import keys
from driftline.contract.records import DLQ_ERROR_CLASS, DLQ_ERROR_MESSAGE, DLQ_SOURCE_TOPIC, DLQ_STAGE
from driftline.contract.settings import Settings
from tests.harness import WorkerProcess, event, publish, read_until
from tests.strategies import draw_many, hostile_events, hostile_labels

pytestmark = pytest.mark.integration

HOSTILE_EVENTS, HOSTILE_LABELS = 1500, 1000
VALID_EVENTS, AFTER = 1000, 200
EVENT_TS = 1_700_000_000_000  # tests.harness.event(i) is at EVENT_TS + i


def learned(client: redis.Redis, settings: Settings) -> int:
    return int(client.hget(keys.learner(settings.redis_prefix, settings.model_name), "learned") or 0)


def from_topic(records: list, settings: Settings, topic: str) -> list:
    return [r for r in records if dict(r.headers)[DLQ_SOURCE_TOPIC] == settings.topic(topic).encode()]


def test_hostile_values_in_every_field_become_one_output_each_and_valid_messages_keep_flowing(
    settings, redis_client, tmp_path
):
    settings = settings.model_copy(update={"join_grace_seconds": 2.0})
    hostile = [json.dumps(e).encode() for e in draw_many(hostile_events(), HOSTILE_EVENTS)]
    assert len(hostile) >= HOSTILE_EVENTS
    events = [(f"h{i}".encode(), v) for i, v in enumerate(hostile)] + [
        (f"v{i}".encode(), event(i)) for i in range(VALID_EVENTS)
    ]
    random.Random(11).shuffle(events)
    after = [(f"a{i}".encode(), event(VALID_EVENTS + i)) for i in range(AFTER)]
    # labels: hostile ones for the first half of the valid events, valid ones (published last) for the second half
    half = VALID_EVENTS // 2
    targets = st.integers(0, half - 1).flatmap(lambda k: hostile_labels(f"e{k}", EVENT_TS + k))
    hostile_label_values = [json.dumps(label).encode() for label in draw_many(targets, HOSTILE_LABELS)]
    labels = [(f"hl{i}".encode(), v) for i, v in enumerate(hostile_label_values)]
    valid_labels = [
        (f"vl{k}".encode(), json.dumps({"event_id": f"e{k}", "label": k % 2 == 0, "ts": EVENT_TS + k + 1}).encode())
        for k in range(half, VALID_EVENTS)
    ]
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", events))
        asyncio.run(publish(settings, "events", after))
        wanted = {key for key, _ in events + after}

        def events_done(seen: dict) -> bool:
            letters = from_topic(seen["dead-letter"], settings, "events")
            return len(seen["predictions"]) + len(letters) >= len(wanted)

        out = asyncio.run(read_until(settings, ["predictions", "dead-letter"], events_done, timeout=300))
        asyncio.run(publish(settings, "labels", labels))
        asyncio.run(publish(settings, "labels", valid_labels))

        def labels_done(seen: dict) -> bool:
            letters = from_topic(seen["dead-letter"], settings, "labels")
            return learned(redis_client, settings) + len(letters) >= len(labels) + len(valid_labels)

        label_out = asyncio.run(read_until(settings, ["dead-letter"], labels_done, timeout=300))
        learned_labels = learned(redis_client, settings)
        assert worker.alive(), "no message may stop the worker"
    finally:
        worker.stop()

    event_letters = from_topic(out["dead-letter"], settings, "events")
    outputs = Counter([r.key for r in out["predictions"]] + [r.key for r in event_letters])
    assert set(outputs) == wanted and set(outputs.values()) == {1}, "each event: one prediction or one dead letter"
    scored = {r.key for r in out["predictions"]}
    assert {key for key, _ in after} <= scored, "valid events after the hostile ones are scored"
    assert {f"v{i}".encode() for i in range(VALID_EVENTS)} <= scored, "every valid event is scored"
    messages = " ".join(dict(r.headers)[DLQ_ERROR_MESSAGE].decode() for r in event_letters)
    for check in ("a model name is", "does not fit a float64", "outside the accepted window", "ts must be"):
        assert check in messages, f"the fuzz reached the {check!r} check"
    for letter in event_letters + label_out["dead-letter"]:
        headers = dict(letter.headers)
        assert headers[DLQ_STAGE] and headers[DLQ_ERROR_CLASS] and headers[DLQ_ERROR_MESSAGE], "each says why"
    stages = Counter(dict(r.headers)[DLQ_STAGE] for r in event_letters + label_out["dead-letter"])
    assert stages[b"unexpected"] == 0, f"every hostile value is caught by an explicit check: {stages}"

    label_letters = from_topic(label_out["dead-letter"], settings, "labels")
    letter_keys = Counter(r.key for r in label_letters)
    assert set(letter_keys.values()) <= {1}, "a label is dead-lettered at most once"
    assert learned_labels + len(label_letters) == len(labels) + len(valid_labels), "each label: learned or refused"
    assert not {key for key, _ in valid_labels} & set(letter_keys), "valid labels after the hostile ones are learned"
    assert worker.starts == 1 and "Traceback" not in worker.log()
