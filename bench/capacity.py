"""`driftline bench capacity`: the capacity model of docs/SCALING.md, fed by costs measured on the public path.

:func:`plan` is the arithmetic: from the per-event costs (worker CPU, Kafka bytes, Redis bytes of an event waiting
for its label, labels one learner learns per second) and a workload (events/s, the share of events that get a
label, how late labels come, how long an event waits at most), the workers, partitions, Kafka throughput and
storage, Redis memory and shards, and the learner's load it needs.

:func:`run` measures the costs it can on this machine: the same Agrawal events (9 features, no label yet) through
one worker, then through two workers sharing the partitions, each on fresh topics of one embedded stack (real
broker, real redis-server, real worker processes): CPU seconds of every worker process idle (per second) and per
event beyond that, Redis
``used_memory`` growth per event left waiting for its label, and the bytes of the event and prediction records.
The per-event costs with two workers against one worker are the check that the model's arithmetic (linear in
workers and events) holds; the plan for 1k, 10k and 100k events/s is computed from the larger of each cost.

>>> costs = Costs(worker_cpu_us_per_event=40.0, worker_idle_cores=0.0, kafka_bytes_per_event=700.0,
...               kafka_bytes_per_label=80.0, redis_bytes_per_waiting_event=150.0, learn_labels_per_s=50_000.0)
>>> p = plan(costs, Workload(events_per_s=10_000, label_coverage=0.05, label_delay_s=3600, label_ttl_s=86_400))
>>> p["worker_cores"], p["workers"], p["partitions"], p["labels_per_s"], p["learner_load"]
(0.4, 1, 4, 500.0, 0.01)
>>> p["waiting_events"], p["redis_gb"], p["redis_masters"]
(822600000, 123.39, 5)
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from driftline.bench.pipeline import cpu_seconds
from driftline.bench.state import used_memory
from driftline.contract.settings import Settings
from driftline.embedded.demo import start_worker, worker_env
from driftline.embedded.stack import EmbeddedStack, embedded_stack, free_port, stop_process, wait_for_port
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.registry import ModelRegistry
from driftline.streams.connections import kafka_kwargs, redis_client
from driftline.streams.publisher import producer_for
from driftline.streams.topics import ensure_topics

MODEL = "default"
WAIT_SECONDS = 600.0
#: Share of a core one worker process is planned to use (headroom for bursts, rebalances and the learner).
CORE_BUDGET = 0.7
#: Memory of one Redis master planned for data (a 32 GB node, with room for fork on persistence and fragmentation).
REDIS_MASTER_BYTES = 25e9
#: Redis commands the bench needs besides the worker's (``INFO`` for ``used_memory``).
BENCH_COMMANDS = ("info",)
#: The rates docs/SCALING.md plans for.
RATES = (1_000, 10_000, 100_000)
#: Seconds the workers are watched idle (joined, model loaded, no event) for their fixed CPU cost.
IDLE_SECONDS = 5.0


@dataclass(frozen=True)
class Costs:
    """What one event (or label) costs, measured."""

    worker_cpu_us_per_event: float  # beyond the worker's idle cost
    worker_idle_cores: float  # what a worker uses with no event (timers, heartbeats, polling)
    kafka_bytes_per_event: float  # the event's record and its prediction's record
    kafka_bytes_per_label: float
    redis_bytes_per_waiting_event: float
    learn_labels_per_s: float  # one learner per model


@dataclass(frozen=True)
class Workload:
    """What the deployment is asked to carry (one model)."""

    events_per_s: float
    label_coverage: float = 0.05  # share of events that ever get a label
    label_delay_s: float = 3_600.0  # how late a label comes
    label_ttl_s: float = 7 * 86_400.0  # DRIFTLINE_LABEL_TTL_SECONDS: how long an event waits for its label
    kafka_retention_s: float = 7 * 86_400.0
    replication: int = 3


def plan(costs: Costs, load: Workload) -> dict[str, Any]:
    """The resources ``load`` needs at ``costs`` (see the module's example and docs/SCALING.md).

    Workers: CPU cores at :data:`CORE_BUDGET` each, less what each uses idle. Partitions: at least twice the
    workers, a power of two and at least 4 (room to double the workers without repartitioning). Redis: at steady
    state an event holds its join
    record until its label is learned (``label_delay_s``) or, never labelled, until it expires (``label_ttl_s``).
    Masters: that memory over :data:`REDIS_MASTER_BYTES`. Learner load: labels/s over what one learner learns
    (above 1 the model's learner falls behind).
    """
    rate = load.events_per_s
    cores = rate * costs.worker_cpu_us_per_event / 1e6
    workers = max(1, math.ceil(round(cores / (CORE_BUDGET - costs.worker_idle_cores), 9)))
    cores += workers * costs.worker_idle_cores
    partitions = max(4, 2 ** math.ceil(math.log2(2 * workers)))
    labels = rate * load.label_coverage
    kafka_bytes_per_s = rate * costs.kafka_bytes_per_event + labels * costs.kafka_bytes_per_label
    waiting = rate * ((1 - load.label_coverage) * load.label_ttl_s + load.label_coverage * load.label_delay_s)
    redis_bytes = waiting * costs.redis_bytes_per_waiting_event
    return {
        "events_per_s": rate,
        "worker_cores": round(cores, 2),
        "workers": workers,
        "partitions": partitions,
        "kafka_mb_per_s": round(kafka_bytes_per_s / 1e6, 2),
        "kafka_storage_tb": round(kafka_bytes_per_s * load.kafka_retention_s * load.replication / 1e12, 2),
        "labels_per_s": round(labels, 1),
        "learner_load": round(labels / costs.learn_labels_per_s, 3),
        "waiting_events": round(waiting),
        "redis_gb": round(redis_bytes / 1e9, 2),
        "redis_masters": max(1, math.ceil(redis_bytes / REDIS_MASTER_BYTES)),
    }


# --- measuring the costs ---------------------------------------------------------------------------------------


async def _publish(settings: Settings, broker_url: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = producer_for(kafka_kwargs(settings, broker_url))
    await producer.start()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(settings.topic("events"), value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _predictions(settings: Settings, broker_url: str, expected: int, workers: list[Any]) -> tuple[int, int]:
    """Read the predictions topic until ``expected`` distinct events are predicted: (distinct, bytes of the
    records' keys and values read)."""
    consumer = AIOKafkaConsumer(
        **kafka_kwargs(settings, broker_url), enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024
    )
    await consumer.start()
    seen: set[bytes] = set()
    size = 0
    try:
        consumer.assign([TopicPartition(settings.topic("predictions"), p) for p in range(settings.partitions)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + WAIT_SECONDS
        while len(seen) < expected:
            if any(w.poll() is not None for w in workers) or time.monotonic() > deadline:
                raise RuntimeError(f"{len(seen)} of {expected} events predicted; see the worker logs")
            for records in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                for record in records:
                    if record.key not in seen:
                        seen.add(record.key)
                        size += len(record.key or b"") + len(record.value or b"")
        return len(seen), size
    finally:
        await consumer.stop()


def measure(stack: EmbeddedStack, workers: int, events: list[dict[str, Any]], label: bytes) -> dict[str, Any]:
    """``events`` (no labels) through ``workers`` worker processes on fresh topics of ``stack``: the per-event
    costs. ``label`` is one encoded label (its size is the Kafka cost of a label)."""
    import orjson

    settings = Settings(topic_prefix=f"capacity{uuid.uuid4().hex[:6]}.")
    hmac_key = secrets.token_hex(16)
    client = redis_client(settings, stack.redis_url)
    model, schema, task = bootstrap_model()
    ModelRegistry(client, hmac_key.encode(), prefix=settings.redis_prefix).register(
        MODEL, model, schema=schema, task=task, note="bench capacity: bootstrap"
    )
    asyncio.run(ensure_topics(settings, stack.broker_url))
    records = [(e["event_id"].encode(), orjson.dumps(e)) for e in events]
    warm, rest = records[:500], records[500:]
    procs = []
    try:
        for i in range(workers):
            port = free_port()
            env = worker_env(settings, stack, hmac_key, port)
            procs.append(start_worker(env, stack.workdir / f"capacity-{settings.topic_prefix}{i}.log"))
            wait_for_port(port, timeout=120, proc=procs[-1])
        asyncio.run(_publish(settings, stack.broker_url, warm))  # every worker joined, the model loaded
        asyncio.run(_predictions(settings, stack.broker_url, len(warm), procs))
        idle_from = [cpu_seconds(p.pid) or 0.0 for p in procs]
        time.sleep(IDLE_SECONDS)  # nothing to wait for: the workers' CPU with no event, over a fixed time
        cpu_before = [cpu_seconds(p.pid) or 0.0 for p in procs]
        idle_cores = sum(b - a for a, b in zip(idle_from, cpu_before, strict=True)) / IDLE_SECONDS / workers
        memory_before = used_memory(client)
        started = time.perf_counter()
        asyncio.run(_publish(settings, stack.broker_url, rest))
        predicted, prediction_bytes = asyncio.run(_predictions(settings, stack.broker_url, len(records), procs))
        elapsed = time.perf_counter() - started
        cpu = sum((cpu_seconds(p.pid) or 0.0) - before for p, before in zip(procs, cpu_before, strict=True))
        memory_after = used_memory(client)
    finally:
        for proc in procs:
            stop_process(proc)
        client.close()
    event_bytes = sum(len(k) + len(v) for k, v in records)
    return {
        "workers": workers,
        "events": len(rest),
        "events_per_s": round(len(rest) / elapsed, 1),
        "worker_cpu_us_per_event": round(cpu / len(rest) * 1e6, 1),
        "worker_idle_cores": round(idle_cores, 3),
        "worker_cpu_us_per_event_beyond_idle": round((cpu - idle_cores * workers * elapsed) / len(rest) * 1e6, 1),
        "redis_bytes_per_waiting_event": round((memory_after - memory_before) / len(rest), 1),
        "kafka_bytes_per_event": round((event_bytes + prediction_bytes) / predicted, 1),
        "kafka_bytes_per_label": len(MODEL) + len(label),
    }


def run(
    events: int = 20_000,
    workers: int = 2,
    learn_labels_per_s: float = 10_685.0,
    label_coverage: float = 0.05,
    label_delay_s: float = 3_600.0,
    label_ttl_s: float = 7 * 86_400.0,
) -> dict[str, Any]:
    """One worker, then ``workers`` workers, on the same ``events`` Agrawal events; the plan for :data:`RATES`
    from the larger of the two runs' costs and ``learn_labels_per_s`` (measured by ``driftline bench state``)."""
    if events < 1000 or workers < 2:
        raise ValueError("events must be >= 1000 and workers >= 2")
    pairs = list(synthetic_stream(events + 500, drift_at=events + 500))
    stream = [e for e, _ in pairs]
    import orjson

    label = orjson.dumps({"event_id": stream[0]["event_id"], "label": True, "ts": stream[0]["ts"] + 1})
    with embedded_stack(key_prefix="", extra_redis_commands=BENCH_COMMANDS) as stack:
        one = measure(stack, 1, stream, label)
        many = measure(stack, workers, stream, label)
    worst = {k: max(one[k], many[k]) for k in ("worker_cpu_us_per_event_beyond_idle", "worker_idle_cores")}
    worst |= {k: max(one[k], many[k]) for k in ("kafka_bytes_per_event", "redis_bytes_per_waiting_event")}
    costs = Costs(  # the larger of the two runs' figures: the plan errs on the safe side
        worker_cpu_us_per_event=worst["worker_cpu_us_per_event_beyond_idle"],
        worker_idle_cores=worst["worker_idle_cores"],
        kafka_bytes_per_event=worst["kafka_bytes_per_event"],
        kafka_bytes_per_label=many["kafka_bytes_per_label"],
        redis_bytes_per_waiting_event=worst["redis_bytes_per_waiting_event"],
        learn_labels_per_s=learn_labels_per_s,
    )
    load = {"label_coverage": label_coverage, "label_delay_s": label_delay_s, "label_ttl_s": label_ttl_s}
    return {
        "one_worker": one,
        "workers": many,
        "check": {
            "cpu_us_per_event_ratio": round(many["worker_cpu_us_per_event"] / one["worker_cpu_us_per_event"], 3),
            "cpu_us_per_event_beyond_idle_ratio": round(
                many["worker_cpu_us_per_event_beyond_idle"] / one["worker_cpu_us_per_event_beyond_idle"], 3
            ),
            "redis_bytes_per_waiting_event_ratio": round(
                many["redis_bytes_per_waiting_event"] / one["redis_bytes_per_waiting_event"], 3
            ),
            "kafka_bytes_per_event_ratio": round(many["kafka_bytes_per_event"] / one["kafka_bytes_per_event"], 3),
        },
        "costs": asdict(costs),
        "workload": load,
        "plan": {str(rate): plan(costs, Workload(events_per_s=rate, **load)) for rate in RATES},
    }
