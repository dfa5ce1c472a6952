"""Fault tests (issue 7) on the real embedded stack, each bounded in time and asserting on counts only.

* kill -9 of the worker at seeded random moments of a labelled stream (36,000 events and 5 kills; 16,000 and 3
  on a Redis Cluster), restarted each time; a stream much shorter lets the last kill, which waits for the worker
  restarted before it to learn, land after every label was learned (12,000 on the cluster did, idle);
* Redis down for 10 s while events and labels flow (this test's own embedded stack): stopped and restarted
  mid-stream, at the tail of the stream, under a learning backlog; or frozen (SIGSTOP/SIGCONT) mid-stream;
* a worker restarted with empty local state recovers its learner checkpoint and its detector state.

The kill -9 test and Redis stopped mid-stream also run against a real 3-master Redis Cluster
(``DRIFTLINE_REDIS_CLUSTER``; the outage stops the master holding the model's keys), and so does a worker killed
during that outage.

Each scenario prints one JSON line (``print(..., flush=True)``, run with ``-s``) for BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import redis
from aiokafka import AIOKafkaProducer, ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from driftline.contract import keys
from driftline.contract.records import DLQ_ERROR_CLASS, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC
from driftline.contract.settings import Settings
from driftline.embedded.demo import interleave
from driftline.embedded.stack import (
    EmbeddedRedisCluster,
    EmbeddedServer,
    EmbeddedStack,
    embedded_stack,
    free_port,
    start_redis_cluster,
    wait_for_port,
)
from driftline.models.bootstrap import synthetic_stream
from driftline.monitoring.monitor import Monitor
from driftline.streams.connections import redis_client as connect_redis
from driftline.streams.producer import message_key
from driftline.streams.publisher import MAX_REQUEST_BYTES
from driftline.streams.topics import ensure_topics
from tests.conftest import TEST_ONLY_REDIS_COMMANDS
from tests.harness import WorkerProcess, prediction_ids, read_until

pytestmark = pytest.mark.integration

LABEL_DELAY = 200  # a label is published ~200 events after its event (like driftline.embedded.demo.interleave)
PROGRESS_TIMEOUT = 120.0  # seconds without the progress a step waits for before the test gives up
DRAIN_TIMEOUT = 240.0  # seconds for every event and label to come out once the stream is published
ALERT_COOLDOWN = 3600.0  # longer than any test: an alert key seen twice is a failure of deduplication


# --- the stream ---------------------------------------------------------------------------------


@dataclass
class LabelledStream:
    """Events (keyed by event id) and labels (keyed by model name), with what each label must become."""

    events: list[bytes]
    labels: list[bytes]
    event_ids: set[str]
    valid_labels: int
    expected_letters: Counter[str]  # dead-letter error class -> how many labels must end there

    def messages(self) -> Iterator[tuple[str, bytes]]:
        return interleave(self.events, self.labels, LABEL_DELAY)


def labelled_stream(n: int, drift_at: int | None = None, bad_labels: bool = False) -> LabelledStream:
    """``n`` synthetic events with one valid label each; with ``bad_labels``, also labels that must be
    dead-lettered: unknown event ids, a label the binary model cannot take, duplicates and unreadable bytes."""
    pairs = list(synthetic_stream(n, drift_at=drift_at))
    events = [json.dumps(e).encode() for e, _ in pairs]
    labels = [json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"] + 1}).encode() for e, y in pairs]
    expected: Counter[str] = Counter()
    if bad_labels:
        rng = random.Random(3)
        for i in sorted(rng.sample(range(n), 20), reverse=True):
            labels.insert(i + 1, labels[i])  # the same label delivered twice
        expected["DuplicateLabel"] += 20
        for i in range(0, n, n // 5):  # a label the binary model cannot take, before the real one
            event = pairs[i][0]
            labels.insert(i, json.dumps({"event_id": event["event_id"], "label": "maybe", "ts": event["ts"]}).encode())
            expected["LabelError"] += 1
        labels += [json.dumps({"event_id": f"ghost-{k}", "label": True, "ts": 1}).encode() for k in range(10)]
        expected["UnknownEvent"] += 10
        labels += [b"not json", b'{"event_id": "ev-00000001", "label": tru']
        expected["JSONDecodeError"] += 2
    return LabelledStream(events, labels, {e["event_id"] for e, _ in pairs}, n, expected)


@dataclass
class Published:
    """How many messages the paced publisher has sent so far."""

    sent: int = 0


async def publish_paced(
    settings: Settings, messages: Iterable[tuple[str, bytes]], rate: float, published: Published | None = None
) -> int:
    """Publish ``(topic, value)`` pairs at about ``rate`` messages/s: events keyed by event id, labels by model."""
    published = published if published is not None else Published()
    await ensure_topics(settings, settings.broker_url)
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, max_request_size=MAX_REQUEST_BYTES, linger_ms=5)
    await producer.start()
    try:
        loop = asyncio.get_running_loop()
        started, pending, count = loop.time(), [], 0
        for count, (topic, raw) in enumerate(messages, start=1):
            key = message_key(raw) if topic == "events" else settings.model_name.encode()
            pending.append(await producer.send(settings.topic(topic), raw, key=key))
            if count % 100 == 0:
                await asyncio.gather(*pending)
                pending.clear()
                published.sent = count
                await asyncio.sleep(max(0.0, started + count / rate - loop.time()))
        await asyncio.gather(*pending)
        published.sent = count
        return count
    finally:
        await producer.stop()


# --- what came out -------------------------------------------------------------------------------


def learned_count(client: redis.Redis, settings: Settings) -> int:
    """Labels learned so far, from the learner's checkpoint hash."""
    return int(client.hget(keys.learner(settings.redis_prefix, settings.model_name), "learned") or 0)


def label_letters(records: list[ConsumerRecord], settings: Settings) -> dict[tuple[int, int], set[str]]:
    """Error classes of dead-lettered labels by source (partition, offset); de-duplicated (at-least-once)."""
    out: dict[tuple[int, int], set[str]] = defaultdict(set)
    for record in records:
        headers = dict(record.headers)
        if headers.get(DLQ_SOURCE_TOPIC) == settings.topic("labels").encode():
            out[(int(headers[DLQ_SOURCE_PARTITION]), int(headers[DLQ_SOURCE_OFFSET]))].add(
                headers[DLQ_ERROR_CLASS].decode()
            )
    return out


def alert_keys(records: list[ConsumerRecord]) -> Counter[tuple[str, str | None, str | None]]:
    """How many alerts were published per (kind, feature, detector)."""
    alerts = [json.loads(r.value) for r in records]
    return Counter((a["kind"], a.get("feature"), a.get("detector")) for a in alerts)


def drained(settings: Settings, client: redis.Redis, stream: LabelledStream) -> Callable[[dict], bool]:
    """``read_until`` condition: every event predicted, every label learned or dead-lettered."""

    def done(seen: dict[str, list[ConsumerRecord]]) -> bool:
        if len(set(prediction_ids(seen["predictions"]))) < len(stream.event_ids):
            return False
        letters = label_letters(seen["dead-letter"], settings)
        return learned_count(client, settings) + len(letters) >= len(stream.labels)

    return done


def worker_process(settings: Settings, log_dir: Path) -> tuple[WorkerProcess, int]:
    """A worker (not started) with its own free /metrics port, so its counters can be read (and no two workers
    of concurrent test sessions ever share a port)."""
    port = free_port()
    return WorkerProcess(settings, log_dir, DRIFTLINE_METRICS_PORT=str(port)), port


def metric(port: int, name: str) -> float:
    """Sum of the samples called ``name`` on a worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def summary(
    fault: str,
    faults: int,
    settings: Settings,
    stream: LabelledStream,
    out: dict[str, list[ConsumerRecord]],
    learned: int,
    **extra: Any,
) -> dict[str, Any]:
    """The one-line JSON summary of a fault run (printed for BENCHMARKS.md) and returned."""
    ids = prediction_ids(out["predictions"])
    result = {
        "fault": fault,
        "faults_injected": faults,
        "events": len(stream.event_ids),
        "predicted": len(set(ids) & stream.event_ids),
        "lost": len(stream.event_ids - set(ids)),
        "duplicated": len(ids) - len(set(ids)),
        "labels": len(stream.labels),
        "valid_labels": stream.valid_labels,
        "learned": learned,
        "labels_dead_lettered": len(label_letters(out["dead-letter"], settings)),
        **extra,
    }
    print(json.dumps(result), flush=True)
    return result


# --- 1. kill -9 --------------------------------------------------------------------------------


async def kill_at_random_moments(
    worker: WorkerProcess,
    client: redis.Redis,
    settings: Settings,
    kills: int,
    duration: float,
    seed: int,
    published: Published,
) -> list[tuple[int, int]]:
    """Kill -9 and restart the worker ``kills`` times at seeded random moments of the publishing window
    (``duration`` seconds), each once the worker learned something since its last start (so every kill hits a
    working worker) plus a random delay; returns (labels learned, messages published) at each kill."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    started = loop.time()
    moments = sorted(started + rng.uniform(0.05, 0.8) * duration for _ in range(kills))
    at_kill: list[tuple[int, int]] = []
    at_start = learned_count(client, settings)
    for moment in moments:
        deadline = max(loop.time(), moment) + PROGRESS_TIMEOUT
        while loop.time() < moment or learned_count(client, settings) <= at_start:
            assert worker.alive(), f"worker died on its own:\n{worker.log()[-3000:]}"
            assert loop.time() < deadline, f"no learning progress within {PROGRESS_TIMEOUT}s:\n{worker.log()[-3000:]}"
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0.0, 2.0))  # anywhere in a batch, not right after a checkpoint
        worker.kill()
        at_kill.append((learned_count(client, settings), published.sent))
        worker.start()
        at_start = learned_count(client, settings)
    return at_kill


def run_kill_fault(
    settings: Settings,
    client: redis.Redis,
    log_dir: Path,
    n: int = 50_000,
    kills: int = 5,
    rate: float = 800.0,
    seed: int = 2024,
) -> dict[str, Any]:
    """The kill -9 scenario; returns (and prints) its summary. Asserts the worker kept making progress."""
    settings = settings.model_copy(update={"join_grace_seconds": 5, "snapshot_every_labels": 2000})
    stream = labelled_stream(n)
    asyncio.run(ensure_topics(settings, settings.broker_url))
    worker, _ = worker_process(settings, log_dir)
    worker.start()
    try:

        async def drive() -> list[tuple[int, int]]:
            published = Published()
            publishing = asyncio.create_task(publish_paced(settings, stream.messages(), rate, published))
            duration = 2 * n / rate  # n events and n labels
            at_kill = await kill_at_random_moments(worker, client, settings, kills, duration, seed, published)
            await publishing
            return at_kill

        at_kill = asyncio.run(drive())
        out = asyncio.run(
            read_until(
                settings, ["predictions", "dead-letter"], drained(settings, client, stream), timeout=DRAIN_TIMEOUT
            )
        )
        assert worker.alive(), f"worker died on its own:\n{worker.log()[-3000:]}"
    finally:
        worker.stop()
    return summary(
        "worker_kill_9",
        len(at_kill),
        settings,
        stream,
        out,
        learned_count(client, settings),
        learned_at_kills=[k for k, _ in at_kill],
        published_at_kills=[p for _, p in at_kill],
        messages=len(stream.events) + len(stream.labels),
        worker_starts=worker.starts,
    )


@pytest.fixture
def cluster_settings(settings: Settings, redis_cluster: EmbeddedRedisCluster) -> Settings:
    """The test's settings with the session's 3-master Redis Cluster instead of the standalone Redis."""
    return settings.model_copy(update={"redis_url": redis_cluster.url, "redis_cluster": True})


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("backend", "n", "kills"), [("standalone", 36_000, 5), ("cluster", 24_000, 3)])
def test_worker_killed_5_times_at_random_moments_loses_no_event_and_learns_each_label_once(
    request, tmp_path, backend, n, kills
):
    settings = request.getfixturevalue("settings" if backend == "standalone" else "cluster_settings")
    client = connect_redis(settings, settings.redis_url)
    result = run_kill_fault(settings, client, tmp_path, n=n, kills=kills)
    client.close()
    assert result["faults_injected"] == kills and result["worker_starts"] == kills + 1
    assert all(0 < k < result["valid_labels"] for k in result["learned_at_kills"]), "every kill landed mid-stream"
    assert result["lost"] == 0, "every event has a prediction"
    assert result["learned"] == result["valid_labels"], "each unique valid label is learned exactly once"
    assert result["labels_dead_lettered"] == 0, "no valid label is dead-lettered"


# --- 2. Redis outage ---------------------------------------------------------------------------


@dataclass
class OutageTarget:
    """The broker and Redis of an outage test, and the Redis server process the outage stops: the Redis itself,
    or on a Redis Cluster the master holding the model's keys."""

    broker_url: str
    redis_url: str
    cluster: bool
    server: EmbeddedServer


@pytest.fixture
def own_stack() -> Iterator[EmbeddedStack]:
    """A broker and Redis for this test alone (its Redis is stopped and restarted), stopped by pid after."""
    with embedded_stack(key_prefix="", extra_redis_commands=TEST_ONLY_REDIS_COMMANDS) as started:
        yield started
    for server in (started.broker, started.redis):
        assert server.proc.poll() is not None, f"{server.name} (pid {server.pid}) still running"


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[EmbeddedRedisCluster]:
    """A 3-master Redis Cluster for this test alone (one of its masters is stopped), stopped by pid after."""
    cluster = start_redis_cluster(
        tmp_path, secrets.token_urlsafe(24), key_prefix="", extra_commands=TEST_ONLY_REDIS_COMMANDS
    )
    yield cluster
    cluster.stop()
    assert all(node.proc.poll() is not None for node in cluster.nodes), "a cluster node still running"


def outage_target(request: pytest.FixtureRequest, backend: str, settings: Settings) -> OutageTarget:
    """The standalone backend: this test's own broker and Redis; the cluster: the session's broker and this
    test's own cluster, whose master serving the model's keys is the one stopped."""
    if backend == "standalone":
        stack = request.getfixturevalue("own_stack")
        return OutageTarget(stack.broker_url, stack.redis_url, False, stack.redis)
    cluster = request.getfixturevalue("own_cluster")
    home = cluster.node_of(keys.learner(settings.redis_prefix, settings.model_name))
    return OutageTarget(settings.broker_url, cluster.url, True, home)  # type: ignore[arg-type]


def wait_until_loaded(client: redis.Redis, key: str, timeout: float = 60.0) -> None:
    """Block until a restarted Redis serves ``key`` (it refuses commands with LOADING while it reads its AOF; a
    cluster answers CLUSTERDOWN until its nodes see the restarted master again)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.exists(key)
            return
        except redis.RedisError:
            assert time.monotonic() < deadline, f"redis not ready within {timeout}s"
            time.sleep(0.05)


def prediction_values(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


OutageAt = Literal["mid_stream", "at_tail", "under_backlog"]
OutageHow = Literal["stopped", "frozen", "stopped_and_worker_killed"]


def run_redis_outage(
    settings: Settings,
    target: OutageTarget,
    log_dir: Path,
    where: OutageAt = "mid_stream",
    how: OutageHow = "stopped",
    n: int = 16_000,
    outage_seconds: float = 10.0,
    rate: float = 800.0,
) -> dict[str, Any]:
    """Stop Redis for ``outage_seconds`` once learning is under way (after the drift point), restart it, let the
    stream finish; returns (and prints) the summary with what happened during the outage.

    ``how``: ``stopped``, SIGTERM then a restart on the same port and data (connections refused meanwhile);
    ``frozen``, SIGSTOP then SIGCONT by pid (a hung server: connections accepted, every command times out);
    ``stopped_and_worker_killed``, stopped, and halfway through the outage the worker is killed (-9) with the join
    records of the events it scored meanwhile still buffered; it is started again once Redis is back.

    ``where``: ``mid_stream``, the stream flows at ``rate`` across the outage; ``at_tail``, the last 20 % of the
    stream is published during the outage, so nothing is scored after Redis is back (the join writes buffered
    during the outage must still reach the learner); ``under_backlog``, the first 40 % of the stream is published
    at once, and once learning is under way the rest is published while the worker is paused, and Redis stops
    before it goes on: the learner meets the outage with 60 % of the labels waiting (however fast it learns).
    """
    at_tail, backlog = where == "at_tail", where == "under_backlog"
    rate = 50 * rate if backlog else rate
    stop_at = 0.2 if backlog else 0.4
    settings = settings.model_copy(
        update={
            "broker_url": target.broker_url,
            "redis_url": target.redis_url,
            "redis_cluster": target.cluster,
            "join_grace_seconds": 5,
            "snapshot_every_labels": 2000,
            "alert_cooldown_seconds": ALERT_COOLDOWN,
        }
    )
    stream = labelled_stream(n, drift_at=n // 4, bad_labels=True)
    messages = list(stream.messages())
    split = int((0.8 if at_tail else 0.4 if backlog else 1.0) * len(messages))
    client = connect_redis(settings, target.redis_url, retry=False)
    server = target.server
    asyncio.run(ensure_topics(settings, settings.broker_url))
    worker, _ = worker_process(settings, log_dir)
    worker.start()
    outage: dict[str, Any] = {}
    try:

        async def drive() -> None:
            publishing = asyncio.create_task(publish_paced(settings, messages[:split], rate))
            if at_tail or backlog:
                await publishing
            deadline = time.monotonic() + PROGRESS_TIMEOUT
            while learned_count(client, settings) < stop_at * n:
                assert worker.alive(), f"worker died on its own:\n{worker.log()[-3000:]}"
                assert time.monotonic() < deadline, f"no learning progress:\n{worker.log()[-3000:]}"
                await asyncio.sleep(0.1)
            pid = worker.proc.pid  # type: ignore[union-attr]
            outage["learned_at_stop"] = learned_count(client, settings)
            outage["version_at_stop"] = int(
                client.hget(keys.learner(settings.redis_prefix, settings.model_name), "base_version") or 0
            )
            with worker.paused() if backlog else contextlib.nullcontext():
                if backlog:
                    await publish_paced(settings, messages[split:], rate)
                if how == "frozen":
                    os.kill(server.pid, signal.SIGSTOP)
                else:
                    server.stop()  # SIGTERM: redis fsyncs its append-only file on shutdown
            outage["stopped_ms"] = int(time.time() * 1000)
            if at_tail:
                await publish_paced(settings, messages[split:], rate=10 * rate)
            if how == "stopped_and_worker_killed":
                await asyncio.sleep(max(0.0, outage["stopped_ms"] / 1000 + outage_seconds / 2 - time.time()))
                worker.kill()
                outage["killed_ms"] = int(time.time() * 1000)
            await asyncio.sleep(max(0.0, outage["stopped_ms"] / 1000 + outage_seconds - time.time()))
            outage["alive_at_restart"] = worker.alive() and worker.proc.pid == pid  # type: ignore[union-attr]
            outage["restarted_ms"] = int(time.time() * 1000)
            with worker.paused() if worker.alive() else contextlib.nullcontext():  # nothing learned before it is read
                if how == "frozen":
                    os.kill(server.pid, signal.SIGCONT)
                else:
                    server.restart()
                wait_until_loaded(client, keys.learner(settings.redis_prefix, settings.model_name))
                outage["learned_at_restart"] = learned_count(client, settings)
            if how == "stopped_and_worker_killed":
                worker.start()
            await publishing

        asyncio.run(drive())
        out = asyncio.run(
            read_until(
                settings,
                ["predictions", "dead-letter", "alerts"],
                drained(settings, client, stream),
                timeout=DRAIN_TIMEOUT,
            )
        )
        outage["alive_at_end"] = worker.alive()
    finally:
        worker.stop()
        if how == "frozen":  # a failure during the outage: leave the stack as it was
            os.kill(server.pid, signal.SIGCONT)
        elif server.proc.poll() is not None:
            server.restart()
    predictions = prediction_values(out["predictions"])
    outage_end = outage.get("killed_ms", outage["restarted_ms"])
    during = [p for p in predictions if outage["stopped_ms"] <= p["ts"] < outage_end]
    result = summary(
        f"redis_{how}_{where}",
        1,
        settings,
        stream,
        out,
        learned_count(client, settings),
        outage_seconds=outage_seconds,
        predicted_during_outage=len({p["event_id"] for p in during}),
        versions_during_outage=sorted({p["model_version"] for p in during}),
        learned_at_stop=outage["learned_at_stop"],
        learned_at_restart=outage["learned_at_restart"],
        alerts=sum(alert_keys(out["alerts"]).values()),
        alert_keys=len(alert_keys(out["alerts"])),
        worker_starts=worker.starts,
    )
    client.close()
    letters = Counter(c for classes in label_letters(out["dead-letter"], settings).values() for c in classes)
    return {
        **result,
        **outage,
        "letters": letters,
        "expected_letters": stream.expected_letters,
        "repeated_alerts": {k: c for k, c in alert_keys(out["alerts"]).items() if c > 1},
        "log": worker.log(),
    }


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("how", "where", "backend"),
    [
        ("stopped", "mid_stream", "standalone"),
        ("stopped", "at_tail", "standalone"),
        ("stopped", "under_backlog", "standalone"),
        ("frozen", "mid_stream", "standalone"),
        ("stopped", "mid_stream", "cluster"),
    ],
)
def test_redis_down_10s_scoring_continues_worker_survives_and_learning_resumes_with_nothing_lost(
    request, settings, tmp_path, how, where, backend
):
    result = run_redis_outage(settings, outage_target(request, backend, settings), tmp_path, where, how)
    assert result["alive_at_restart"] and result["alive_at_end"] and result["worker_starts"] == 1, (
        "the worker survives the outage in the same process"
    )
    assert result["learned_at_stop"] < result["valid_labels"], "Redis stops with labels left to learn"
    assert result["predicted_during_outage"] > 0, "scoring goes on with the loaded model while Redis is down"
    assert max(result["versions_during_outage"]) <= result["version_at_stop"], "no model version from nowhere"
    assert result["lost"] == 0, "every event has a prediction"
    assert result["learned"] > result["learned_at_restart"], "learning resumes once Redis is back"
    assert result["learned"] == result["valid_labels"], "every valid label is learned exactly once"
    assert result["letters"] == result["expected_letters"], "every other label is dead-lettered with its reason"
    assert result["alerts"] > 0 and result["repeated_alerts"] == {}, "each alert key is published once"
    assert "Traceback" not in result["log"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["standalone", "cluster"])
def test_worker_killed_during_a_redis_outage_loses_no_join_record(request, settings, tmp_path, backend):
    """Join records wait in the scorer's memory while Redis is down; their offsets are not committed until they
    reach Redis, so the restarted worker scores those events again and every label still finds its event. On the
    cluster, the master holding the model's keys is the one stopped."""
    target = outage_target(request, backend, settings)
    result = run_redis_outage(settings, target, tmp_path, "mid_stream", "stopped_and_worker_killed")
    assert not result["alive_at_restart"] and result["alive_at_end"] and result["worker_starts"] == 2
    assert result["predicted_during_outage"] > 0, "events were scored, their join records buffered, before the kill"
    assert result["lost"] == 0, "every event has a prediction"
    assert result["letters"] == result["expected_letters"], "no valid label dead-lettered as UnknownEvent"
    assert result["learned"] == result["valid_labels"], "every valid label is learned exactly once"


# --- 3. restart with empty local state -----------------------------------------------------------


def scoring_monitor(client: redis.Redis, settings: Settings) -> Monitor | None:
    """The scoring monitor checkpointed in Redis (signature verified), or None."""
    blob = client.get(keys.monitor(settings.redis_prefix, settings.model_name, "scoring"))
    return Monitor.restore(blob, settings.keyring(), purpose=f"monitor:{settings.model_name}:scoring") if blob else None


def run_empty_state_restart(
    settings: Settings, client: redis.Redis, log_dir: Path, n: int = 12_000, rate: float = 3000.0
) -> dict[str, Any]:
    """Stream the first 60 % (drift included), wait for a monitor checkpoint covering it, kill -9 the worker,
    start a new process and stream the rest; returns what the restarted process resumed from and did."""
    settings = settings.model_copy(
        update={
            "join_grace_seconds": 5,
            "snapshot_every_labels": 2000,
            "alert_cooldown_seconds": ALERT_COOLDOWN,
        }
    )
    stream = labelled_stream(n, drift_at=n // 4)
    messages = list(stream.messages())
    first = messages[: int(0.6 * len(messages))]
    first_events = {message_key(raw) for topic, raw in first if topic == "events"}
    first_labels = sum(1 for topic, _ in first if topic == "labels")
    asyncio.run(ensure_topics(settings, settings.broker_url))
    worker, port = worker_process(settings, log_dir)
    worker.start()
    state: dict[str, Any] = {}
    try:
        asyncio.run(publish_paced(settings, first, rate))
        before = asyncio.run(
            read_until(
                settings,
                ["predictions", "alerts"],
                lambda seen: (
                    {e.encode() for e in prediction_ids(seen["predictions"])} >= first_events  # type: ignore[operator]
                    and learned_count(client, settings) >= first_labels
                    and bool(seen["alerts"])
                ),
                timeout=DRAIN_TIMEOUT,
            )
        )
        deadline = time.monotonic() + PROGRESS_TIMEOUT  # the scoring monitor is checkpointed every 10 s
        while (monitor := scoring_monitor(client, settings)) is None or monitor.events < len(first_events):
            assert time.monotonic() < deadline, "no scoring monitor checkpoint covering the first part"
            time.sleep(0.5)
        worker.kill()  # kill -9: nothing local survives, the new process starts from Redis and Kafka only
        monitor = scoring_monitor(client, settings)
        assert monitor is not None
        state.update(
            learned_at_kill=learned_count(client, settings),
            monitor_events_at_kill=monitor.events,
            alerts_before=alert_keys(before["alerts"]),
        )
        worker.start()
        wait_for_port(port, timeout=60, proc=worker.proc)
        asyncio.run(publish_paced(settings, messages[len(first) :], rate))
        out = asyncio.run(
            read_until(
                settings,
                ["predictions", "dead-letter", "alerts"],
                drained(settings, client, stream),
                timeout=DRAIN_TIMEOUT,
            )
        )
        state.update(
            scored_after=metric(port, "driftline_events_scored_total"),
            learned_after=metric(port, "driftline_labels_learned_total"),
        )
    finally:
        worker.stop()  # graceful: the scoring monitor is checkpointed on stop
    final = scoring_monitor(client, settings)
    after = alert_keys(out["alerts"]) - state["alerts_before"]
    result = summary(
        "worker_restart_empty_local_state",
        1,
        settings,
        stream,
        out,
        learned_count(client, settings),
        learned_at_kill=state["learned_at_kill"],
        learned_by_new_process=int(state["learned_after"]),
        monitor_events_at_kill=state["monitor_events_at_kill"],
        scored_by_new_process=int(state["scored_after"]),
        monitor_events_final=final.events if final is not None else None,
        alerts_before=sum(state["alerts_before"].values()),
        alerts_after=sum(after.values()),
    )
    return {**result, "repeated_after_restart": {k: c for k, c in after.items() if k in state["alerts_before"]}}


@pytest.mark.timeout(600)
def test_worker_restarted_with_empty_local_state_resumes_learner_and_detectors_without_alert_storm(
    settings, redis_client, tmp_path
):
    result = run_empty_state_restart(settings, redis_client, tmp_path)
    assert 0 < result["learned_at_kill"] < result["valid_labels"]
    assert result["monitor_events_at_kill"] > 0, "the scoring monitor was checkpointed before the kill"
    assert result["learned"] == result["valid_labels"], "every label learned once"
    assert result["learned_by_new_process"] == result["valid_labels"] - result["learned_at_kill"], (
        "the new process resumed from the learner checkpoint: it learned only the labels after it"
    )
    assert result["monitor_events_final"] == result["monitor_events_at_kill"] + result["scored_by_new_process"], (
        "the new process's scoring monitor continued from the checkpointed detector state"
    )
    assert result["lost"] == 0
    assert result["alerts_before"] > 0 and result["repeated_after_restart"] == {}, "no alert storm on restart"
