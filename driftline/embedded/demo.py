"""`driftline demo`: the embedded stack, a worker process and a producer, end to end, with live progress."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from driftline.contract.records import DLQ_SOURCE_TOPIC, RecordError, parse_event, parse_label
from driftline.contract.settings import Settings
from driftline.embedded.stack import (
    CHILD_PYTHON,
    EmbeddedStack,
    embedded_stack,
    free_port,
    stop_process,
    wait_for_port,
)
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.features import SchemaInference, infer_schema
from driftline.models.registry import ModelRegistry
from driftline.models.specs import Task, TaskInference, build_model, infer_task_of
from driftline.streams.connections import async_redis_client, kafka_kwargs, redis_client
from driftline.streams.learner_state import learned_count
from driftline.streams.producer import message_key, read_messages
from driftline.streams.publisher import producer_for
from driftline.streams.report_io import read_monitors
from driftline.streams.topics import ensure_topics

SCHEMA_SAMPLE = 1000


@dataclass
class Tally:
    """What the demo has seen come out of the worker."""

    scored: set[str] = field(default_factory=set)
    duplicates: int = 0
    dead_lettered: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    alerts: list[dict[str, Any]] = field(default_factory=list)
    first_output: float = 0.0
    last_output: float = 0.0


def worker_env(
    settings: Settings, stack: EmbeddedStack, hmac_key: str, metrics_port: int, http_port: int = 0
) -> dict[str, str]:
    """Environment of a worker process talking to the embedded stack (its V2 HTTP API off unless ``http_port``)."""
    return {
        **os.environ,
        "DRIFTLINE_BROKER_URL": stack.broker_url,
        "DRIFTLINE_REDIS_URL": stack.redis_url,
        "DRIFTLINE_MODEL_HMAC_KEY": hmac_key,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_METRICS_PORT": str(metrics_port),
        "DRIFTLINE_HTTP_PORT": str(http_port),
    }


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``driftline worker`` as a child process (its output goes to ``log_path``)."""
    log = log_path.open("ab")
    return subprocess.Popen(
        [*CHILD_PYTHON, "-m", "driftline", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def demo_messages(events_path: Path | None, labels_path: Path | None, n_events: int) -> tuple[list[bytes], list[bytes]]:
    """Raw event and label messages: from the files given, else the synthetic drifting stream."""
    if events_path is None:
        pairs = list(synthetic_stream(n_events))
        events = [json.dumps(e).encode() for e, _ in pairs]
        labels = [json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"]}).encode() for e, y in pairs]
        if labels_path is None:
            return events, labels
    else:
        events = list(read_messages(events_path))
        labels = []
    if labels_path is not None:
        labels = list(read_messages(labels_path))
    return events, labels


def infer_stream_schema(events: list[bytes]) -> SchemaInference:
    """Feature schema from the first valid events of a file: each feature's kind is the one most events agree on
    (events conflicting with it are dead-lettered by the worker)."""
    rows = []
    for raw in events:
        try:
            rows.append(parse_event(raw).features)
        except RecordError:
            continue
        if len(rows) >= SCHEMA_SAMPLE:
            break
    if not rows:
        raise ValueError("the events file has no valid event to take a feature schema from")
    return infer_schema(rows)


def infer_label_task(labels: list[bytes]) -> TaskInference | None:
    """The task the first valid labels agree on (None without labels); :class:`AmbiguousTask` when unclear."""
    targets = []
    for raw in labels[:SCHEMA_SAMPLE]:
        try:
            targets.append(parse_label(raw).label)
        except RecordError:
            continue
    return infer_task_of(targets) if targets else None


def register_demo_model(
    registry: ModelRegistry,
    name: str,
    events: list[bytes],
    labels: list[bytes],
    synthetic: bool,
    task: Task | None = None,
) -> list[str]:
    """Register the model the demo scores with; returns lines saying where its schema and task came from.

    A fresh model's inferred schema and task are stored with the version (``data_summary["inferred"]``).
    """
    if synthetic:
        model, schema, bootstrap_task = bootstrap_model()
        registry.register(name, model, schema=schema, task=bootstrap_task, note="demo bootstrap (River Agrawal)")
        return ["bootstrap model trained on River's Agrawal generator"]
    reference = registry.reference(name) if name in registry.names() else None
    inferred: dict[str, object] = {}
    if reference:
        schema, lines = reference.schema(), ["schema from the registered reference profile"]
    else:
        inference = infer_stream_schema(events)
        schema, lines = inference.schema, [f"schema inferred from the first valid events: {inference.describe()}"]
        inferred["schema"] = inference.to_dict()
    if task is None:
        labelled = infer_label_task(labels)
        task = labelled.task if labelled else "binary"
        lines.append(f"task inferred: {labelled.describe()}" if labelled else "task: binary (no labels to infer from)")
        if labelled:
            inferred["task"] = labelled.to_dict()
    else:
        lines.append(f"task: {task} (given)")
    registry.register(
        name,
        build_model(schema, task),
        schema=schema,
        task=task,
        data_summary={"inferred": inferred} if inferred else None,
        note="demo: fresh model, " + "; ".join(lines),
    )
    return lines


def interleave(events: list[bytes], labels: list[bytes], delay: int) -> Iterator[tuple[str, bytes]]:
    """Events in order, each label ``delay`` events after its event (labels of unknown ids at the end)."""
    by_event: dict[str, list[bytes]] = defaultdict(list)
    orphans = []
    event_ids = [message_key(raw) for raw in events]
    known = {e for e in event_ids if e}
    for raw in labels:
        key = message_key(raw)
        (by_event[key.decode()] if key in known and key else orphans).append(raw)  # type: ignore[union-attr]
    for i, raw in enumerate(events):
        yield "events", raw
        if i >= delay and event_ids[i - delay]:
            for label in by_event.pop(event_ids[i - delay].decode(), []):  # type: ignore[union-attr]
                yield "labels", label
    for rest in itertools.chain(by_event.values(), [orphans]):
        for label in rest:
            yield "labels", label


async def collect(settings: Settings, bootstrap: str, tally: Tally, stop: asyncio.Event) -> None:
    """Read predictions, dead letters and alerts from the beginning until ``stop`` is set."""
    topics = [settings.topic(t) for t in ("predictions", "dead-letter", "alerts")]
    consumer = AIOKafkaConsumer(
        **kafka_kwargs(settings, bootstrap), enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(t, p) for t in topics for p in range(settings.partitions)])
        await consumer.seek_to_beginning()
        while not stop.is_set():
            for tp, records in (await consumer.getmany(timeout_ms=100, max_records=5000)).items():
                for record in records:
                    _count(tp.topic, record, settings, tally)
    finally:
        await consumer.stop()


def _count(topic: str, record: Any, settings: Settings, tally: Tally) -> None:
    tally.last_output = time.monotonic()
    tally.first_output = tally.first_output or tally.last_output
    if topic == settings.topic("predictions"):
        event_id = json.loads(record.value)["event_id"]
        if event_id in tally.scored:
            tally.duplicates += 1
        tally.scored.add(event_id)
    elif topic == settings.topic("dead-letter"):
        source = dict(record.headers).get(DLQ_SOURCE_TOPIC, b"").decode()
        tally.dead_lettered[source.removeprefix(settings.topic_prefix)] += 1
    else:
        tally.alerts.append(json.loads(record.value))


def performance_windows(settings: Settings, redis_url: str, name: str) -> dict[str, list[dict[str, Any]]]:
    """Per model, CBPE's estimated metrics beside the realised ones per window of labels, from the learning
    monitor's checkpoint (``[{"end_event_id", "estimated": {...}, "realised": {...}}]``)."""
    client = redis_client(settings, redis_url)
    try:
        _, learning = read_monitors(client, settings, name)
    finally:
        client.close()
    return {name: learning.performance_windows() if learning is not None else []}


async def run_demo(
    events_path: Path | None = None,
    labels_path: Path | None = None,
    label_delay: int = 500,
    n_events: int = 20_000,
    timeout: float = 300.0,
    console: Console | None = None,
    task: Task | None = None,
    *,
    rounds: int = 1,
    on_drained: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the whole demo and return its summary (``task`` overrides the task inferred from the labels).

    With ``rounds`` above 1 the stream is published in that many consecutive parts, each only once everything
    before it came out (scored or dead-lettered, learned or dead-lettered); ``on_drained(i)`` is called after
    part ``i`` came out, while the worker holds nothing in flight (``driftline bench hostile`` reads its RSS then).
    """
    console = console or Console(stderr=True)
    settings = Settings()
    events, labels = demo_messages(events_path, labels_path, n_events)
    with embedded_stack(key_prefix=settings.redis_prefix) as stack:
        hmac_key = stack.hmac_key
        worker_settings = Settings(broker_url=stack.broker_url, redis_url=stack.redis_url, model_hmac_key=hmac_key)
        registry = ModelRegistry(
            redis_client(worker_settings, stack.redis_url), hmac_key.encode(), prefix=settings.redis_prefix
        )
        sources = register_demo_model(registry, settings.model_name, events, labels, events_path is None, task)
        console.print(f"[bold]embedded stack[/]: broker {stack.broker_url}, redis {stack.redis_url.rpartition('@')[2]}")
        for line in sources:
            console.print(f"model '{settings.model_name}': {line}", markup=False, highlight=False, soft_wrap=True)
        await ensure_topics(settings, stack.broker_url)
        metrics_port, http_port = free_port(), free_port()
        env = worker_env(settings, stack, hmac_key, metrics_port, http_port)
        worker = start_worker(env, stack.workdir / "worker.log")
        try:
            wait_for_port(metrics_port, timeout=60, proc=worker)
            console.print(
                f"worker pid {worker.pid}, metrics http://127.0.0.1:{metrics_port}/metrics, "
                f"V2 inference http://127.0.0.1:{http_port}/v2/models/{settings.model_name}/infer"
            )
            summary = await _drive(
                settings, stack, events, labels, label_delay, timeout, console, worker, rounds, on_drained
            )
        finally:
            stop_process(worker)
        summary["performance"] = performance_windows(worker_settings, stack.redis_url, settings.model_name)
        return summary


async def _drive(
    settings: Settings,
    stack: EmbeddedStack,
    events: list[bytes],
    labels: list[bytes],
    label_delay: int,
    timeout: float,
    console: Console,
    worker: subprocess.Popen,
    rounds: int = 1,
    on_drained: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    tally, stop = Tally(), asyncio.Event()
    collector = asyncio.create_task(collect(settings, stack.broker_url, tally, stop))
    producer = producer_for(kafka_kwargs(settings, stack.broker_url))
    await producer.start()
    label_key = settings.model_name.encode()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    redis = async_redis_client(settings, stack.redis_url)
    learned = 0

    async def wait_for(
        progress: Progress, task: Any, count: Callable[[], Awaitable[int]], total: int, what: str
    ) -> int:
        deadline = time.monotonic() + timeout
        while (value := await count()) < total:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode}; see {stack.workdir / 'worker.log'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not every {what} came out within {timeout}s; see {stack.workdir / 'worker.log'}")
            progress.update(task, completed=value)
            await asyncio.sleep(0.1)
        progress.update(task, completed=total)
        return value

    async def events_out() -> int:
        return len(tally.scored) + tally.dead_lettered["events"]

    async def labels_out() -> int:
        nonlocal learned
        learned = await learned_count(redis, settings.redis_prefix, settings.model_name)
        return learned + tally.dead_lettered["labels"]

    with Progress(*columns, console=console, transient=False) as progress:
        published = progress.add_task("published", total=len(events) + len(labels))
        done = progress.add_task("scored or dead-lettered", total=len(events))
        joined = progress.add_task("labels learned or dead-lettered", total=len(labels))
        stream = list(interleave(events, labels, label_delay))
        sent, sent_events, elapsed = 0, 0, 0.0
        for part in range(rounds):
            pending = []
            tally.first_output = 0.0
            for kind, raw in stream[len(stream) * part // rounds : len(stream) * (part + 1) // rounds]:
                key = message_key(raw) if kind == "events" else label_key
                pending.append(await producer.send(settings.topic(kind), raw, key=key))
                sent, sent_events = sent + 1, sent_events + (kind == "events")
                if sent % 1000 == 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    progress.update(published, completed=sent)
                    progress.update(done, completed=await events_out())
            await asyncio.gather(*pending)
            progress.update(published, completed=sent)
            await wait_for(progress, done, events_out, sent_events, "event")
            elapsed += max(tally.last_output - tally.first_output, 1e-9)
            await wait_for(progress, joined, labels_out, sent - sent_events, "label")
            if on_drained is not None:
                on_drained(part)
    await asyncio.sleep(0.5)  # alerts raised by the last batches
    stop.set()
    await collector
    await producer.stop()
    await redis.aclose()
    return {
        "events": len(events),
        "scored": len(tally.scored),
        "duplicate_predictions": tally.duplicates,
        "dead_lettered": tally.dead_lettered["events"],
        "labels": len(labels),
        "labels_dead_lettered": tally.dead_lettered["labels"],
        "learned": learned,
        "alerts": tally.alerts,
        "eps": round(len(events) / elapsed, 1),
    }
