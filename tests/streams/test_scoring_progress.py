"""The join grace counts the scorers' progress, not seconds: a real worker started on a backlog, both cores busy,
a 3-second grace. Every valid label waits for its event however long scoring takes; labels of events that were
never published are dead-lettered once the scorers passed the point where they would have been."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from driftline.models.bootstrap import synthetic_stream
from tests.harness import WorkerProcess, busy_cores, publish, read_until
from tests.streams.test_faults import label_letters, learned_count

pytestmark = pytest.mark.integration


def test_labels_behind_a_scoring_backlog_wait_for_their_events_and_ghosts_are_dead_lettered(settings, tmp_path):
    settings = settings.model_copy(update={"join_grace_seconds": 3.0})
    n, ghosts = 15_000, 10
    pairs = list(synthetic_stream(n))
    events = [(e["event_id"].encode(), json.dumps(e).encode()) for e, _ in pairs]
    labels = [json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"]}).encode() for e, y in pairs]
    labels += [json.dumps({"event_id": f"ghost-{i}", "label": True, "ts": 1}).encode() for i in range(ghosts)]
    asyncio.run(publish(settings, "events", events))  # the whole backlog first, then every label at once
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
                        >= n + ghosts
                    ),
                    timeout=300,
                )
            )
            learned = learned_count(client, settings)
        finally:
            worker.stop()
            client.close()
    letters = label_letters(out["dead-letter"], settings)
    print(json.dumps({"labels": n, "learned": learned, "dead_lettered": len(letters)}), flush=True)
    assert learned == n, f"{n - learned} valid labels were not learned"
    assert len(letters) == ghosts and all(classes == {"UnknownEvent"} for classes in letters.values())
