"""Scale-out (issue 7): several worker processes of one app share the partitions of ``events``.

Which process handled what is read from each worker's own Prometheus endpoint (``driftline_events_scored_total``),
not from the predictions (every worker stamps the same model version). Every test bounds its waits and asserts on
counts only; each prints one JSON line (run with ``-s``).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from driftline.contract.settings import Settings
from driftline.embedded.stack import free_port, wait_for_port
from driftline.streams.publisher import MAX_REQUEST_BYTES
from driftline.streams.topics import ensure_topics
from tests.harness import WorkerProcess, event, prediction_ids, read_until

pytestmark = pytest.mark.integration

KEYS = 64  # spread over every partition (13 keys would leave partition 3 empty)
STEP_TIMEOUT = 120.0  # seconds a step may wait for the progress it needs


def key_of(i: int) -> bytes:
    return f"k{i % KEYS}".encode()


class Scorer:
    """A worker process with its own free /metrics port, read to learn which process scored how many events."""

    def __init__(self, settings: Settings, log_dir: Path):
        log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = WorkerProcess(settings, log_dir, DRIFTLINE_METRICS_PORT=str(self.port))
        self.last_scored = 0.0

    def start(self) -> Scorer:
        self.process.start()
        wait_for_port(self.port, timeout=60, proc=self.process.proc)
        return self

    def scored(self) -> float:
        """Events this process scored so far (kept after it stopped: the last value read)."""
        if self.process.alive():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
                    text = response.read().decode()
            except (urllib.error.URLError, ConnectionError):
                return self.last_scored
            self.last_scored = sum(
                s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "driftline_events_scored_total"
            )
        return self.last_scored


async def publish_paced(settings: Settings, n: int, rate: float, sent: list[int]) -> None:
    """Publish events ``e0..e{n-1}`` keyed ``k{i % KEYS}`` at about ``rate`` events/s; ``sent[0]`` counts them."""
    await ensure_topics(settings, settings.broker_url)
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, max_request_size=MAX_REQUEST_BYTES, linger_ms=5)
    await producer.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for low in range(0, n, 200):
            numbers = range(low, min(n, low + 200))
            batch = [await producer.send(settings.topic("events"), event(i), key=key_of(i)) for i in numbers]
            await asyncio.gather(*batch)
            sent[0] = low + len(batch)
            await asyncio.sleep(max(0.0, started + sent[0] / rate - loop.time()))
    finally:
        await producer.stop()


async def wait_for(condition: Any, what: str, *workers: Scorer) -> None:
    """Poll ``condition()`` until true; fail after ``STEP_TIMEOUT`` or when a worker died on its own."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while not condition():
        for worker in workers:
            assert worker.process.alive(), f"worker died on its own:\n{worker.process.log()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def every_event_predicted(n: int) -> Any:
    return lambda seen: len(set(prediction_ids(seen["predictions"]))) >= n


def first_occurrences_out_of_order(predictions: list[ConsumerRecord]) -> dict[bytes, int]:
    """Per key, how many first occurrences of an event id come before the one of an earlier event."""
    seen: set[str] = set()
    last: dict[bytes, int] = defaultdict(lambda: -1)
    bad: dict[bytes, int] = defaultdict(int)
    for record in predictions:  # read_until keeps each partition's order; one key lives in one partition
        event_id = json.loads(record.value)["event_id"]
        if event_id in seen:
            continue
        seen.add(event_id)
        number = int(event_id[1:])
        if number < last[record.key]:
            bad[record.key] += 1
        last[record.key] = max(last[record.key], number)
    return dict(bad)


def report(scenario: str, n: int, predictions: list[ConsumerRecord], **extra: Any) -> dict[str, Any]:
    ids = prediction_ids(predictions)
    result = {
        "fault": scenario,
        "events": n,
        "lost": n - len(set(ids)),
        "duplicated": len(ids) - len(set(ids)),
        **extra,
    }
    print(json.dumps(result), flush=True)
    return result


@pytest.mark.timeout(600)
def test_two_workers_share_the_partitions_both_score_and_every_event_is_predicted(settings, tmp_path):
    n = 12_000
    first, second = Scorer(settings, tmp_path / "a"), Scorer(settings, tmp_path / "b")
    try:
        first.start()
        second.start()

        async def drive() -> None:
            sent = [0]
            publishing = asyncio.create_task(publish_paced(settings, n, 600.0, sent))
            await wait_for(lambda: first.scored() > 0 and second.scored() > 0, "both workers to score", first, second)
            await publishing

        asyncio.run(drive())
        out = asyncio.run(read_until(settings, ["predictions"], every_event_predicted(n), timeout=STEP_TIMEOUT))
        scored = [first.scored(), second.scored()]  # both alive: final counts
    finally:
        first.process.stop()
        second.process.stop()
    result = report("two_workers", n, out["predictions"], scored_by_worker=scored)
    assert all(s > 0 for s in scored), "both processes handled events"
    assert sum(scored) >= n, "together they scored every event (more only after a rebalance)"
    assert result["lost"] == 0
    assert first_occurrences_out_of_order(out["predictions"]) == {}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_rebalance_while_events_flow_loses_nothing_and_keeps_order_per_key(settings, tmp_path, how):
    """The second worker joins mid-stream, then the first leaves (SIGTERM, or kill -9: the second takes over
    its partitions after the session timeout)."""
    n = 20_000
    first, second = Scorer(settings, tmp_path / "a"), Scorer(settings, tmp_path / "b")
    moments: dict[str, int] = {}
    try:
        first.start()

        async def drive() -> None:
            sent = [0]
            publishing = asyncio.create_task(publish_paced(settings, n, 600.0, sent))
            await wait_for(lambda: first.scored() >= n // 10, "the first worker to score a tenth", first)
            moments["second_joined_at_sent"] = sent[0]
            await asyncio.to_thread(second.start)  # the stream keeps flowing meanwhile
            await wait_for(lambda: second.scored() > 0, "the second worker to get partitions", first, second)
            first.scored()  # its last count before it leaves
            moments["first_left_at_sent"] = sent[0]
            await asyncio.to_thread(first.process.stop if how == "stop" else first.process.kill)
            moments["second_scored_when_first_left"] = int(second.scored())
            await wait_for(lambda: second.scored() > moments["second_scored_when_first_left"], "the take-over", second)
            await publishing
            assert sent[0] == n

        asyncio.run(drive())
        out = asyncio.run(read_until(settings, ["predictions"], every_event_predicted(n), timeout=STEP_TIMEOUT))
        assert second.process.alive(), f"worker died on its own:\n{second.process.log()[-3000:]}"
        scored = [first.scored(), second.scored()]  # the first's: its last count before it left
    finally:
        first.process.stop()
        second.process.stop()
    result = report(f"rebalance_then_first_worker_{how}", n, out["predictions"], scored_by_worker=scored, **moments)
    assert moments["first_left_at_sent"] < n, "the first worker left while events were still arriving"
    assert all(c > 0 for c in scored), "both processes handled events"
    assert result["lost"] == 0, "no event lost across the rebalances"
    assert first_occurrences_out_of_order(out["predictions"]) == {}, "per key, events are first predicted in order"
