"""Fuzz through a real worker: malformed messages mixed 1:10 with valid ones on the real embedded stack."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from driftline.contract.records import DLQ_ERROR_CLASS, DLQ_ERROR_MESSAGE, DLQ_STAGE
from tests.harness import WorkerProcess, publish, read_until
from tests.strategies import draw_many, malformed_events, valid_events

pytestmark = pytest.mark.integration

MALFORMED, VALID_PER_MALFORMED = 1000, 10


def test_every_malformed_message_is_dead_lettered_with_a_reason_and_every_valid_one_scored(settings, tmp_path):
    malformed = draw_many(malformed_events(), MALFORMED)
    assert len(malformed) >= MALFORMED
    valid = []
    for i, event in enumerate(draw_many(valid_events(), MALFORMED) * VALID_PER_MALFORMED):
        valid.append(json.dumps({**event, "event_id": f"valid-{i}"}).encode())
    messages = [(f"bad-{i}".encode(), m) for i, m in enumerate(malformed)] + [(None, v) for v in valid]
    random.Random(3).shuffle(messages)
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", messages))
        out = asyncio.run(
            read_until(
                settings,
                ["predictions", "dead-letter"],
                lambda seen: len(seen["predictions"]) >= len(valid) and len(seen["dead-letter"]) >= len(malformed),
                timeout=180,
            )
        )
        assert worker.alive(), "the worker must survive every malformed message"
    finally:
        worker.stop()
    scored = {json.loads(r.value)["event_id"] for r in out["predictions"]}
    assert scored == {f"valid-{i}" for i in range(len(valid))}, "100% of valid events scored"
    assert sorted(r.value or b"" for r in out["dead-letter"]) == sorted(m or b"" for m in malformed), (
        "100% of malformed messages dead-lettered with their original bytes"
    )
    for record in out["dead-letter"]:
        headers = dict(record.headers)
        assert headers[DLQ_STAGE] in (b"deserialize", b"validate")
        assert headers[DLQ_ERROR_CLASS] and headers[DLQ_ERROR_MESSAGE], "every dead letter says why"
    assert worker.starts == 1 and "Traceback" not in worker.log(), "0 worker restarts, no crash"
