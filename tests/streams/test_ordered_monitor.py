"""The single ordered monitor per model on the real stack: two workers share the 4 partitions of ``events`` and
both score, and one monitor (wherever the model's ``monitor`` partition is owned) watches every event once, in
event-time order, and alerts once."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter

import pytest
import redis
from aiokafka import AIOKafkaProducer

from driftline.contract import keys
from driftline.contract.settings import Settings
from driftline.embedded.stack import free_port, wait_for_port
from driftline.models.bootstrap import synthetic_stream
from driftline.monitoring.monitor import Monitor
from driftline.streams.ordered_monitor import OrderedMonitors, feed_partition
from tests.harness import WorkerProcess, probe, read_until
from tests.streams.test_faults import Published, publish_paced

pytestmark = pytest.mark.integration

N = 4000


def checkpointed(settings: Settings) -> Monitor | None:
    """The default model's scoring monitor as last checkpointed (None before the first checkpoint)."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        blob = client.get(keys.monitor(settings.redis_prefix, settings.model_name, "scoring"))
    finally:
        client.close()
    if blob is None:
        return None
    purpose = keys.monitor_purpose(settings.model_name, "scoring")
    return Monitor.restore(blob, settings.keyring(), purpose=purpose)


def checkpoint_of_every_event(settings: Settings, workers: list[WorkerProcess]) -> Monitor | None:
    """The monitor as checkpointed (every 10 s) once it holds all ``N`` events, or as last read after 180 s; every
    worker must stay alive meanwhile."""
    deadline, monitor = time.monotonic() + 180, None
    while time.monotonic() < deadline:
        assert all(w.alive() for w in workers), "".join(w.log()[-3000:] for w in workers)
        monitor = checkpointed(settings)
        if monitor is not None and monitor.events >= N:
            break
        time.sleep(0.5)
    return monitor


def scored(port: int) -> float:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("driftline_events_scored_total{")
    )


async def publish_in_order(settings: Settings, events: list[dict]) -> None:
    """Each event appended once the one before is (the broker's order across partitions is the events' time
    order: an event appended after the monitor read the partitions' ends is later than every event before it)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=0)
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(settings.topic("events"), json.dumps(e).encode(), key=e["event_id"].encode())
    finally:
        await producer.stop()


def scoring_partitions(port: int) -> int | None:
    """The ``events`` partitions a worker's scorer holds, as its readiness probe says (None: not yet joined)."""
    answer = probe(port, "/readyz")
    found = re.search(r"score: (\d+) assigned", json.dumps(answer[1])) if answer is not None else None
    return int(found.group(1)) if found else None


def test_feed_partition_is_where_the_producer_puts_the_model_key() -> None:
    from aiokafka.partitioner import DefaultPartitioner  # noqa: PLC0415

    for name in ("default", "fraud", "a" * 40):
        assert feed_partition(name, [3, 1, 0, 2]) == DefaultPartitioner()(name.encode(), [0, 1, 2, 3], [0, 1, 2, 3])


@pytest.mark.timeout(300)
def test_two_workers_feed_one_monitor_that_sees_every_event_once_in_time_order(settings: Settings, tmp_path) -> None:
    pairs = list(synthetic_stream(N, drift_at=N // 2))
    ports = [free_port(), free_port()]
    workers = [
        WorkerProcess(settings, tmp_path / f"w{k}", DRIFTLINE_METRICS_PORT=str(port)) for k, port in enumerate(ports)
    ]
    for k, worker in enumerate(workers):
        (tmp_path / f"w{k}").mkdir()
        worker.start()
    try:
        for worker, port in zip(workers, ports, strict=True):
            wait_for_port(port, timeout=60, proc=worker.proc)
        deadline = time.monotonic() + 120
        while not all(scoring_partitions(port) == 2 for port in ports):  # the group settled: both will score
            assert time.monotonic() < deadline, "the two workers never shared the partitions"
            time.sleep(0.2)
        asyncio.run(publish_in_order(settings, [e for e, _ in pairs]))
        monitor = checkpoint_of_every_event(settings, workers)
        shares = [scored(port) for port in ports]
        alerts = asyncio.run(read_until(settings, ["alerts"], lambda seen: False, timeout=3))["alerts"]
    finally:
        for worker in workers:
            worker.stop()
    assert all(share > 0 for share in shares), f"both workers scored: {shares}"
    assert monitor is not None and monitor.events == N, "one monitor watched every event once"
    merger = monitor.feed
    assert merger.out_of_order == 0 and merger.forced == 0, "in event-time order"
    assert sum(merger.monitored.values()) + len(merger.monitored) == N  # the last offset of each partition, + 1
    fired = Counter((a["kind"], a.get("feature"), a["detector"]) for a in map(json.loads, (r.value for r in alerts)))
    assert fired[("data_drift", "salary", "psi")] == 1 and max(fired.values()) == 1, fired
    first = min(
        int(json.loads(r.value)["event_id"].rsplit("-", 1)[1])
        for r in alerts
        if json.loads(r.value)["kind"] == "data_drift"
    )
    assert N // 2 <= first <= N // 2 + 500, f"the change found {first - N // 2} events late"


@pytest.mark.timeout(300)
def test_the_monitors_worker_killed_mid_stream_its_successor_watches_every_event_once(
    settings: Settings, tmp_path
) -> None:
    """kill -9 of the worker that holds the monitor, once a checkpoint holds part of the stream and while events
    keep coming; a new worker restores the monitor from that checkpoint, reads the feed again from where it says
    and drops what the dead one had watched or fed already (by source offset): every event watched once, the
    drift alerted once."""
    pairs = list(synthetic_stream(N, drift_at=N // 2))
    port = free_port()
    worker = WorkerProcess(settings, tmp_path, DRIFTLINE_METRICS_PORT=str(port)).start()
    published = Published()
    publisher = threading.Thread(
        target=lambda: asyncio.run(
            publish_paced(settings, [("events", json.dumps(e).encode()) for e, _ in pairs], 150, published)
        )
    )
    try:
        wait_for_port(port, timeout=60, proc=worker.proc)
        publisher.start()
        deadline, at_kill = time.monotonic() + 120, None
        while at_kill is None:  # a checkpoint holds part of the stream: kill the monitor's worker
            assert time.monotonic() < deadline and worker.alive(), worker.log()[-3000:]
            monitor = checkpointed(settings)
            if monitor is not None and monitor.events > 0:
                at_kill = monitor.events
            else:
                time.sleep(0.2)
        worker.kill()
        sent_at_kill = published.sent
        worker.start()
        publisher.join(120)
        monitor = checkpoint_of_every_event(settings, [worker])
        alerts = asyncio.run(read_until(settings, ["alerts"], lambda seen: False, timeout=3))["alerts"]
    finally:
        worker.stop()
    print(
        json.dumps(
            {"monitored_at_kill": at_kill, "published_at_kill": sent_at_kill, "monitored": monitor and monitor.events}
        )
    )
    assert sent_at_kill < N, "the kill came while events were still being published"
    assert 0 < at_kill < N
    assert monitor is not None and monitor.events == N, f"every event watched once (killed at {at_kill})"
    fired = Counter((a["kind"], a.get("feature"), a["detector"]) for a in map(json.loads, (r.value for r in alerts)))
    assert fired[("data_drift", "salary", "psi")] == 1, fired


def test_an_idle_feed_checkpoints_nothing_and_a_failed_checkpoint_is_tried_again() -> None:
    class Saves:
        def __init__(self) -> None:
            self.calls, self.stored = 0, True

        async def save(self) -> bool:
            self.calls += 1
            return self.stored

    watch = Saves()
    monitors = OrderedMonitors(Settings(), watch, None, None, None, None, None)  # type: ignore[arg-type]

    async def flushes(batch: bool) -> int:
        before = watch.calls
        if batch:
            monitors.unsaved = True  # what handle() sets first
        await monitors.flush()
        return watch.calls - before

    async def scenario() -> list[int]:
        done = [await flushes(False), await flushes(True), await flushes(False)]
        watch.stored = False
        done += [await flushes(True), await flushes(False)]  # Redis refused it: the next flush writes again
        watch.stored = True
        done += [await flushes(False), await flushes(False)]
        return done

    assert asyncio.run(scenario()) == [0, 1, 0, 1, 1, 1, 0]


def test_the_ends_come_from_the_scorers_fetches_when_it_reads_every_partition(settings: Settings) -> None:
    """No ``ListOffsets`` while the scorer here reads every ``events`` partition: its fetch responses' high
    watermarks are the ends (every record of a multi-record batch counted, where the embedded broker's
    ``ListOffsets`` falls short). A partition it does not read (another worker's) is asked of the broker."""
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    from driftline.streams.batch_source import BatchSource  # noqa: PLC0415
    from driftline.streams.connections import kafka_kwargs  # noqa: PLC0415
    from driftline.streams.topics import ensure_topics  # noqa: PLC0415

    topic = settings.topic("events")
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]

    async def scenario() -> tuple[dict[int, int], int, dict[int, int], int, dict[int, int]]:
        await ensure_topics(settings, settings.broker_url)
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=50)
        await producer.start()
        try:  # partition 0: one batch of 40 records, partition 1: 3 single ones, the others nothing
            await asyncio.gather(*[await producer.send(topic, b"x", partition=0) for _ in range(40)])
            for _ in range(3):
                await producer.send_and_wait(topic, b"y", partition=1)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**kafka_kwargs(settings, settings.broker_url), auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign(tps)
            deadline = time.monotonic() + 30
            while any(consumer.highwater(tp) is None for tp in tps):  # each partition's first fetch response
                assert time.monotonic() < deadline, "no fetch response for every partition"
                await consumer.getmany(timeout_ms=200)
            source = BatchSource(name="score", consumer_kwargs={}, topics=[topic], group_id="g", handler=print)
            source.consumer, source.assigned = consumer, set(tps)
            monitors = OrderedMonitors(settings, None, None, None, None, None, None)  # type: ignore[arg-type]
            monitors.consumer, monitors.fetched_ends = consumer, source.fetched_ends
            every = set(range(settings.partitions))
            fetched = await monitors._ends(every)
            listed_all = monitors.listed
            source.assigned = set(tps[1:])  # partition 0 is another worker's: the broker is asked for all
            partial = await monitors._ends(every)
            listed_partial = monitors.listed
            monitors.fetched_ends = None
            return fetched, listed_all, partial, listed_partial, await monitors._ends(every)
        finally:
            await consumer.stop()

    fetched, listed_all, partial, listed_partial, listed = asyncio.run(scenario())
    expected = {0: 40, 1: 3} | {p: 0 for p in range(2, settings.partitions)}
    assert (fetched, listed_all) == (expected, 0)
    # the broker's answers (partition 0's may fall short of 40), raised by the scorer's where it reads
    assert listed_partial == 1 and partial == listed | {p: e for p, e in expected.items() if p}
    assert listed[0] <= 40 and {p: e for p, e in listed.items() if p} == {p: e for p, e in expected.items() if p}


def test_a_calibrator_redis_cannot_read_is_counted_and_asked_again_at_the_next_events() -> None:
    """A Redis error while a version's CBPE calibrator is read reads nothing (the version is looked up again at its
    next events, nothing cached) and counts in ``driftline_redis_errors_total{op="calibrator_read"}``."""
    from prometheus_client import REGISTRY  # noqa: PLC0415

    from driftline.models.registry import ModelRegistry  # noqa: PLC0415

    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=1)  # nothing listens there
    monitors = OrderedMonitors(Settings(), None, {}, ModelRegistry(unreachable, b"k" * 32), None, None, None)  # type: ignore[arg-type]

    def errors() -> float:
        return REGISTRY.get_sample_value("driftline_redis_errors_total", {"op": "calibrator_read"}) or 0.0

    before = errors()
    assert [asyncio.run(monitors._calibrator("default", 3)) for _ in range(2)] == [(False, None)] * 2
    assert errors() == before + 2
    assert monitors._calibrators == {}
