"""Events in, predictions out, bad input dead-lettered: a real worker process on the real embedded stack."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import pytest

from driftline.contract.records import DLQ_ERROR_CLASS, DLQ_SOURCE_OFFSET, DLQ_SOURCE_TOPIC, DLQ_STAGE
from tests.harness import WorkerProcess, event, prediction_ids, publish, read_until

pytestmark = pytest.mark.integration


def test_every_valid_event_gets_one_prediction_in_key_order_and_bad_ones_are_dead_lettered(settings, tmp_path):
    n = 2000
    keys = [f"k{i % 7}".encode() for i in range(n)]
    bad = [b"{not json", b'{"event_id": "x", "ts": 1, "features": {"salary": "rich"}}']
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        valid = list(zip(keys, (event(i) for i in range(n)), strict=True))
        asyncio.run(publish(settings, "events", [*valid, *((None, b) for b in bad)]))
        out = asyncio.run(
            read_until(
                settings,
                ["predictions", "dead-letter"],
                lambda seen: len(seen["predictions"]) >= n and len(seen["dead-letter"]) >= len(bad),
            )
        )
    finally:
        worker.stop()
    predictions = out["predictions"]
    assert sorted(prediction_ids(predictions)) == sorted(f"e{i}" for i in range(n))
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for record in predictions:
        by_key[record.key].append(int(json.loads(record.value)["event_id"][1:]))
    assert all(ids == sorted(ids) for ids in by_key.values()), "order within a key must be kept"
    first = json.loads(predictions[0].value)
    assert first["model"] == "default" and first["model_version"] == 1
    assert set(first["probabilities"]) == {"False", "True"} and 0.5 <= first["confidence"] <= 1
    assert first["latency_ms"] >= 0
    letters = {r.value: dict(r.headers) for r in out["dead-letter"]}
    assert set(letters) == set(bad), "dead letters carry the original bytes untouched"
    assert letters[b"{not json"][DLQ_STAGE] == b"deserialize"
    assert letters[bad[1]][DLQ_STAGE] == b"validate"
    assert letters[bad[1]][DLQ_ERROR_CLASS] == b"FeatureError"
    assert all(
        h[DLQ_SOURCE_TOPIC] == settings.topic("events").encode() and h[DLQ_SOURCE_OFFSET].isdigit()
        for h in letters.values()
    )
    assert worker.starts == 1 and "Traceback" not in worker.log()


def test_killed_worker_resumes_where_it_left_off_and_no_event_is_left_unscored(settings, tmp_path):
    n = 20_000
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", ((f"k{i % 11}".encode(), event(i)) for i in range(n))))
        asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= n // 10))
        worker.kill()  # kill -9 in the middle of the stream
        worker.start()
        out = asyncio.run(
            read_until(settings, ["predictions"], lambda seen: len(set(prediction_ids(seen["predictions"]))) >= n)
        )
    finally:
        worker.stop()
    ids = prediction_ids(out["predictions"])
    assert set(ids) == {f"e{i}" for i in range(n)}, "no event may be lost across a kill -9"
    assert len(ids) - n < n, "only the uncommitted tail is scored again"
