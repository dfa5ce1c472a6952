"""The embedded broker killed (-9) and restarted on the same port, with both cores busy: the worker keeps its
process, reconnects, scores every new event once and learns every new label once (the learner's checkpoint
points past the new, shorter log: it resumes from the earliest offset with a warning and an alert).

Prints one JSON line (run with ``-s``) for BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter

import pytest
import redis

from driftline.contract.records import DLQ_ERROR_CLASS
from driftline.contract.settings import Settings
from driftline.embedded.demo import interleave
from driftline.embedded.stack import embedded_stack, free_port
from driftline.models.bootstrap import synthetic_stream
from tests.harness import WorkerProcess, busy_cores, prediction_ids, probe, read_until
from tests.streams.test_faults import learned_count, publish_paced

pytestmark = pytest.mark.integration

BEFORE, AFTER = 3000, 2000  # fewer labels after the restart than the checkpoint's offset: see docs/RUNBOOK.md


def labelled(n: int, prefix: str) -> tuple[list[tuple[str, bytes]], set[str]]:
    """``n`` events and their labels interleaved (ids prefixed, so the two halves never share an id)."""
    events, labels = [], []
    for event, y in synthetic_stream(n):
        event = {**event, "event_id": prefix + event["event_id"]}
        events.append(json.dumps(event).encode())
        labels.append(json.dumps({"event_id": event["event_id"], "label": y, "ts": event["ts"] + 1}).encode())
    return list(interleave(events, labels, 200)), {json.loads(e)["event_id"] for e in events}


def offsets_resets(seen: dict[str, list]) -> list[dict]:
    """The ``offsets_reset`` alerts among the ``alerts`` records read."""
    return [a for a in (json.loads(r.value) for r in seen["alerts"]) if a["kind"] == "offsets_reset"]


def wait_for(condition, what: str, worker: WorkerProcess, explain, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.alive(), f"worker died:\n{worker.log()[-3000:]}"
        if time.monotonic() >= deadline:
            explained = explain()
            worker.dump_stacks()
            raise AssertionError(f"{what} not within {timeout} s: {explained}\n{worker.log()[-12000:]}")
        time.sleep(0.1)


def progress(settings: Settings, client: redis.Redis, port: int) -> str:
    """What the worker did so far, for a failure: labels learned, predictions and dead letters by class, its
    probes and the metrics that say where labels wait (lag, join buffer, Redis errors, step failures)."""
    out = asyncio.run(read_until(settings, ["predictions", "dead-letter"], lambda seen: False, timeout=5))
    letters = Counter(dict(r.headers)[DLQ_ERROR_CLASS].decode() for r in out["dead-letter"])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            lines = response.read().decode().splitlines()
    except OSError as exc:
        lines = [f"/metrics: {exc!r}"]
    wanted = (
        "learned",
        "dead_lettered_total",
        "lag",
        "join_buffered",
        "paused",
        "step_failures",
        "scored",
        "redis_errors",
    )
    metrics = [line for line in lines if not line.startswith("#") and any(w in line for w in wanted)]
    return (
        f"learned {learned_count(client, settings)}, predictions {len(set(prediction_ids(out['predictions'])))}, "
        f"dead letters {dict(letters)}, healthz {probe(port, '/healthz')}, readyz {probe(port, '/readyz')}\n"
        + "\n".join(metrics)
    )


def test_broker_killed_and_restarted_empty_loses_nothing_new_and_learns_each_new_label_once(tmp_path) -> None:
    with embedded_stack(key_prefix="restart:") as stack, busy_cores():
        settings = Settings(
            broker_url=stack.broker_url,
            redis_url=stack.redis_url,
            topic_prefix="restart.",
            model_hmac_key="k",
            http_port=0,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
            rebalance_timeout_ms=6000,
        )
        client = redis.Redis.from_url(stack.redis_url)
        port = free_port()
        worker = WorkerProcess(settings, tmp_path, DRIFTLINE_METRICS_PORT=str(port)).start()
        try:
            first, _ = labelled(BEFORE, "a-")
            asyncio.run(publish_paced(settings, first, 2000))
            wait_for(
                lambda: learned_count(client, settings) == BEFORE,
                "the first labels learned",
                worker,
                lambda: progress(settings, client, port),
            )

            stack.broker.kill()  # SIGKILL: Tansu keeps its logs in memory, the new one starts empty
            stack.broker.restart()
            second, ids = labelled(AFTER, "b-")
            asyncio.run(publish_paced(settings, second, 2000))
            out = asyncio.run(
                read_until(
                    settings,
                    ["predictions"],
                    lambda seen: len(set(prediction_ids(seen["predictions"])) & ids) == AFTER,
                    timeout=240,
                )
            )
            wait_for(
                lambda: learned_count(client, settings) >= BEFORE + AFTER,
                "the labels after the restart learned",
                worker,
                lambda: progress(settings, client, port),
            )
            # the learner publishes its alert with a later batch's output: read until it is there (or 120 s)
            out |= asyncio.run(read_until(settings, ["alerts"], lambda seen: bool(offsets_resets(seen)), timeout=120))
            health = probe(port, "/healthz")
            alive = worker.alive()
            learned = learned_count(client, settings) - BEFORE
        finally:
            worker.stop()
    predicted = prediction_ids(out["predictions"])
    resets = offsets_resets(out)
    result = {
        "fault": "broker_kill_9_restart",
        "events_after_restart": AFTER,
        "lost": len(ids - set(predicted)),
        "duplicated": len(predicted) - len(set(predicted)),
        "labels_after_restart": AFTER,
        "learned_after_restart": learned,
        "offsets_reset_alerts": len(resets),
        "worker_starts": worker.starts,
    }
    print(json.dumps(result), flush=True)
    assert alive and worker.starts == 1 and health is not None and health[0] == 200, "the same process goes on"
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["learned_after_restart"] == AFTER, "every new label learned once, none skipped"
    assert resets and "learning resumes from the earliest offset" in resets[0]["message"]
    assert "the broker lost its log" in worker.log()
