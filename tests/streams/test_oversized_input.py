"""Messages larger than the worker's own producer may send: their dead letters must still go out (truncated, saying
so, the source offset pointing at the full original) and the worker must go on."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaProducer

from driftline.contract.records import DLQ_VALUE_TRUNCATED
from driftline.streams.deadletter import MAX_DEAD_LETTER_VALUE_BYTES
from driftline.streams.dlq import DeadLetterInfo, ReplayPolicy, describe, format_line, header
from driftline.streams.publisher import MAX_REQUEST_BYTES
from driftline.streams.topics import ensure_topics
from tests.harness import WorkerProcess, event, read_until

pytestmark = pytest.mark.integration

HUGE = MAX_REQUEST_BYTES + 1024 * 1024  # more than the worker's producer may send in one request


def test_messages_too_large_to_dead_letter_whole_are_dead_lettered_truncated_and_scoring_goes_on(settings, tmp_path):
    huge_event = json.dumps({"event_id": "huge", "ts": 1, "features": {"x": "a" * HUGE}}).encode()
    huge_label = json.dumps({"event_id": "huge-label", "label": "b" * HUGE, "ts": 1}).encode()

    async def publish() -> None:
        await ensure_topics(settings, settings.broker_url)
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, max_request_size=4 * HUGE)
        await producer.start()
        try:
            await (await producer.send(settings.topic("events"), huge_event, key=b"huge"))
            await (await producer.send(settings.topic("labels"), huge_label, key=settings.model_name.encode()))
            for i in range(20):
                await (await producer.send(settings.topic("events"), event(i), key=f"k{i}".encode()))
        finally:
            await producer.stop()

    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish())
        out = asyncio.run(
            read_until(
                settings,
                ["predictions", "dead-letter"],
                lambda seen: len(seen["predictions"]) >= 20 and len(seen["dead-letter"]) >= 2,
                timeout=90,
            )
        )
        alive = worker.alive()
    finally:
        worker.stop()
    assert alive, worker.log()[-3000:]
    assert len(out["predictions"]) == 20, "the events after the huge one are scored"
    policy = ReplayPolicy(prefix=settings.topic_prefix, dead_letter_topic=settings.topic("dead-letter"))
    letters = {DeadLetterInfo.from_headers(r.headers).source_topic: r for r in out["dead-letter"]}
    assert set(letters) == {settings.topic("events"), settings.topic("labels")}
    for record in letters.values():
        info = DeadLetterInfo.from_headers(record.headers)
        assert (info.stage, info.error_class) == ("validate", "PayloadTooLarge")
        assert int(header(record.headers, DLQ_VALUE_TRUNCATED)) > HUGE, "the original size is in the headers"
        assert len(record.value) == MAX_DEAD_LETTER_VALUE_BYTES and info.source_offset == 0
        assert policy.decide(info) == "skip_truncated", "a replay would publish a different message"
        shown = describe(record.topic, record.partition, record.offset, None, record.key, record.value, record.headers)
        assert "of " + str(info.truncated_from) + " bytes]" in format_line(shown)
    assert letters[settings.topic("events")].value == huge_event[:MAX_DEAD_LETTER_VALUE_BYTES]
