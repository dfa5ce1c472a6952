"""The join grace counts the scorers' progress, not seconds (issue 11), on the real broker and a real worker."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from driftline.models.bootstrap import synthetic_stream
from driftline.streams.connections import kafka_kwargs
from driftline.streams.scoring_progress import ScoringProgress, caught_up
from driftline.streams.topics import ensure_topics
from tests.harness import WorkerProcess, busy_cores, publish, read_until
from tests.streams.test_faults import label_letters, learned_count

pytestmark = pytest.mark.integration


def test_progress_reads_the_true_log_end_of_multi_record_batches_and_the_scoring_groups_commits(settings):
    """The end is every record's (Tansu's ListOffsets said 51 for 80 records in two batches: the scorers looked
    caught up before they reached the label's event, and valid labels were dead-lettered as UnknownEvent)."""
    topic = settings.topic("events")
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    kafka = kafka_kwargs(settings, settings.broker_url)

    async def read() -> tuple[dict, dict, dict]:
        await ensure_topics(settings, settings.broker_url)
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=50)
        await producer.start()
        try:
            for count in (50, 30):
                await asyncio.gather(*[await producer.send(topic, b"x", partition=0) for _ in range(count)])
        finally:
            await producer.stop()
        progress = ScoringProgress(settings, kafka)
        try:
            ends, before = await progress.log_ends(), await progress.committed()
            scorer = AIOKafkaConsumer(**kafka, group_id=progress.group, enable_auto_commit=False)
            await scorer.start()
            try:
                scorer.assign([p0])
                await scorer.commit({p0: 60})  # what a scorer commits once the join records below are stored
            finally:
                await scorer.stop()
            return ends, before, await progress.committed()
        finally:
            await progress.close()

    ends, before, after = asyncio.run(read())
    assert ends[p0] == 80 and ends[p1] == 0 and len(ends) == settings.partitions
    assert before == {} and after == {p0: 60}
    assert not caught_up(after, ends) and caught_up({p0: 80}, ends)


def test_labels_behind_a_scoring_backlog_wait_for_their_events_and_ghosts_are_dead_lettered(settings, tmp_path):
    """A worker started on a 12,000-event backlog with a label for every 12th event already published, both cores
    busy, a 1 s grace: the scorers need longer than that, and every valid label still waits for its event (the
    wall-clock grace dead-lettered those the scorer had not reached 1 s after it joined its group); labels of
    events never published are dead-lettered as UnknownEvent once the scorers passed the end of ``events``."""
    settings = settings.model_copy(update={"join_grace_seconds": 1.0})
    n, every, ghosts = 12_000, 12, 10
    pairs = list(synthetic_stream(n))
    events = [(e["event_id"].encode(), json.dumps(e).encode()) for e, _ in pairs]
    labels = [json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"]}).encode() for e, y in pairs[::every]]
    ts = pairs[0][0]["ts"]
    labels += [json.dumps({"event_id": f"ghost-{i}", "label": True, "ts": ts}).encode() for i in range(ghosts)]
    valid = len(labels) - ghosts
    asyncio.run(publish(settings, "events", events))  # the whole backlog first, then every label
    asyncio.run(publish(settings, "labels", [(b"default", label) for label in labels]))
    client = redis.Redis.from_url(settings.redis_url)
    with busy_cores():
        worker = WorkerProcess(settings, tmp_path).start()
        try:
            out = asyncio.run(
                read_until(
                    settings,
                    ["dead-letter"],
                    lambda seen: (
                        learned_count(client, settings) + len(label_letters(seen["dead-letter"], settings))
                        >= len(labels)
                    ),
                    timeout=300,
                )
            )
            learned = learned_count(client, settings)
        finally:
            worker.stop()
            client.close()
    letters = label_letters(out["dead-letter"], settings)
    print(json.dumps({"events": n, "labels": valid, "learned": learned, "dead_lettered": len(letters)}), flush=True)
    assert learned == valid, f"{valid - learned} valid labels were not learned: {sorted(letters.items())[:5]}"
    assert len(letters) == ghosts and all(classes == {"UnknownEvent"} for classes in letters.values())
    assert "Traceback" not in worker.log()
