"""`driftline bench state`: what the deployment keeps in Redis as the stream grows, through the public path.

One worker process on the embedded stack (real broker, real redis-server) scores River's Agrawal stream (9
features) with the bootstrap model:

1. warm-up: ``warmup`` events and their labels, every label learned; by default enough for every bounded store
   to be full (the rows kept for retraining, ``MAX_LABELLED_ROWS``; the learner's exactly-once window; the
   monitors' checkpoints), so that Redis's ``used_memory`` then, once the join records of the learned labels are
   deleted (:meth:`StateRun.settled`), is the deployment's steady state, the *baseline*;
2. ``events`` more events and no label: once all are scored, ``redis_bytes_per_waiting_event`` is the growth of
   ``used_memory`` over the baseline per event (what an event waiting for its label costs);
3. their labels, published while the worker is paused, then learned as one backlog: once all are learned,
   ``redis_bytes_after_learning_ratio`` is ``used_memory`` over the baseline (1.0: nothing of them is left), and
   ``learn_labels_per_s`` how fast the live learner went through them (:mod:`driftline.bench.state_learning`).

Beside each figure, ``redis_bytes_by_family`` sums ``MEMORY USAGE`` of every key under the deployment's prefix by
the family of its name (``join``, ``model``, ``labelled``, ...: see :mod:`driftline.contract.keys`), so a change
of any figure can be told apart.

>>> key_family("driftline:", "driftline:model:default:blob:3"), key_family("driftline:", "driftline:join:m:e1")
('model', 'join')
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis

from driftline.bench.state_growth import grow
from driftline.bench.state_learning import learn_backlog
from driftline.contract.settings import Settings
from driftline.embedded.demo import Tally, collect, start_worker, worker_env
from driftline.embedded.stack import EmbeddedStack, embedded_stack, free_port, stop_process, wait_for_port
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.registry import ModelRegistry
from driftline.streams.connections import kafka_kwargs, redis_client
from driftline.streams.learner_state import MAX_LABELLED_ROWS
from driftline.streams.publisher import producer_for
from driftline.streams.topics import ensure_topics

MODEL = "default"
#: Labelled events before the baseline: the rows kept for retraining reach their cap, and some more.
WARMUP = MAX_LABELLED_ROWS + 10_000
WAIT_SECONDS = 600.0
#: Redis commands the bench itself needs besides the worker's (memory figures, join records left).
BENCH_COMMANDS = ("info", "memory|usage", "scan", "hlen")


def key_family(prefix: str, key: str) -> str:
    """The first part of ``key``'s name after ``prefix`` (how :mod:`driftline.contract.keys` names families)."""
    return key.removeprefix(prefix).split(":", 1)[0]


def used_memory(client: redis.Redis, timeout: float = WAIT_SECONDS) -> int:
    """Redis's ``used_memory`` (bytes the server allocated), read when no rewrite of its append-only file runs or
    waits to run.

    While one runs, Redis keeps every write for it in a buffer allocated 10 MB at a time, counted in ``used_memory``
    and not state: a probe saw ``used_memory`` 10,485,7xx bytes higher whenever a write landed in such a rewrite, and
    two idle runs of this bench read their figure after learning 10.4-10.6 MB high (``redis_bytes_after_learning_ratio``
    1.259 and 1.256) while the keys' ``MEMORY USAGE`` summed to the baseline's. The rewrites follow the file's growth
    (``auto-aof-rewrite-percentage``), so whether one ran at a reading was luck."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.info()  # the memory and persistence sections of one moment
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            return int(info["used_memory"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis rewrote its append-only file for more than {timeout:g} s")
        time.sleep(0.05)


def bytes_by_family(client: redis.Redis, prefix: str) -> dict[str, int]:
    """``MEMORY USAGE`` of every key under ``prefix``, summed by family."""
    names = [k.decode() for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    totals: dict[str, int] = defaultdict(int)
    for start in range(0, len(names), 1000):
        chunk = names[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            pipe.memory_usage(name, samples=0)
        for name, size in zip(chunk, pipe.execute(), strict=True):
            totals[key_family(prefix, name)] += int(size or 0)
    return dict(sorted(totals.items()))


class StateRun:
    """One worker on the embedded stack, a producer feeding it and a reader counting its predictions."""

    def __init__(self, stack: EmbeddedStack, settings: Settings, hmac_key: str):
        self.stack, self.settings = stack, settings
        self.redis = redis_client(settings, stack.redis_url)
        self.registry = ModelRegistry(self.redis, hmac_key.encode(), prefix=settings.redis_prefix)
        self.tally = Tally()
        self.worker: Any = None

    def learned(self) -> int:
        from driftline.contract import keys

        return int(self.redis.hget(keys.learner(self.settings.redis_prefix, MODEL), "learned") or 0)

    def memory(self) -> dict[str, Any]:
        return {
            "used_memory": used_memory(self.redis),
            "by_family": bytes_by_family(self.redis, self.settings.redis_prefix),
        }

    def join_records(self) -> int:
        """Join records still in Redis: the fields of the model's join buckets (``join:{MODEL:SLICE:BUCKET}``)."""
        pattern = f"{self.settings.redis_prefix}join:{{{MODEL}:*:*}}"
        names = list(self.redis.scan_iter(match=pattern, count=1000))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hlen(name)
        return sum(pipe.execute()) if names else 0

    async def settled(self) -> dict[str, Any]:
        """:meth:`memory` once no join record is left: every scored event's label is learned when this is asked,
        and the learner deletes the join records of a checkpoint's labels right after writing it. Two readings in a
        row that agreed were not enough: on a busy machine a baseline was read with join records of labels already
        counted as learned still there (0.796 after learning, 25.0 bytes per waiting event)."""
        await self.wait("the join records of the learned labels deleted", lambda: self.join_records() == 0)
        return self.memory()

    async def wait(self, what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not done():
            if self.worker is not None and self.worker.poll() is not None:
                raise RuntimeError(f"worker exited with {self.worker.returncode}; see {self.stack.workdir}/worker.log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {WAIT_SECONDS}s; see {self.stack.workdir}/worker.log")
            await asyncio.sleep(0.05)

    async def publish(self, producer: Any, messages: list[tuple[str, bytes, bytes]]) -> None:
        pending = []
        for topic, key, value in messages:
            pending.append(await producer.send(self.settings.topic(topic), value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)


def _event(event: dict[str, Any]) -> tuple[str, bytes, bytes]:
    return "events", event["event_id"].encode(), json.dumps(event).encode()


def _label(event: dict[str, Any], y: bool) -> tuple[str, bytes, bytes]:
    return (
        "labels",
        MODEL.encode(),
        json.dumps({"event_id": event["event_id"], "label": y, "ts": event["ts"] + 1}).encode(),
    )


async def _phases(
    run: StateRun, warmup: list[tuple[dict, bool]], waiting: list[tuple[dict, bool]], labelled: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    stop = asyncio.Event()
    reader = asyncio.create_task(collect(run.settings, run.stack.broker_url, run.tally, stop))
    producer = producer_for(kafka_kwargs(run.settings, run.stack.broker_url))
    await producer.start()
    try:
        await run.publish(producer, [_event(e) for e, _ in warmup] + [_label(e, y) for e, y in warmup])
        await run.wait("every warm-up label learned", lambda: run.learned() >= len(warmup))
        await run.wait("every warm-up event scored", lambda: len(run.tally.scored) >= len(warmup))
        baseline = await run.settled()  # the join records of the last checkpoints' labels deleted
        await run.publish(producer, [_event(e) for e, _ in waiting])
        await run.wait("every waiting event scored", lambda: len(run.tally.scored) >= len(warmup) + len(waiting))
        scored = run.memory()
        labels = [_label(e, y) for e, y in waiting]
        learning = await learn_backlog(run, producer, labels, len(warmup) + len(waiting))
        learned = await run.settled()
        growth = await grow(run, producer, labelled, MODEL, len(warmup) + len(waiting)) if labelled else {}
        return {"baseline": baseline, "waiting": scored, "learned": learned}, {**learning, **growth}
    finally:
        stop.set()
        await reader
        await producer.stop()


def run(events: int = 100_000, warmup: int = WARMUP, labelled: int = 1_000_000) -> dict[str, Any]:
    """Run the phases on a new embedded stack (the long labelled one unless ``labelled`` is 0); the JSON figures."""
    if events < 1 or warmup < 1 or labelled < 0:
        raise ValueError("events and warmup must be >= 1, labelled >= 0")
    pairs = list(synthetic_stream(warmup + events, drift_at=warmup + events))
    model, schema, task = bootstrap_model()
    hmac_key = secrets.token_hex(16)
    settings = Settings(topic_prefix=f"state{uuid.uuid4().hex[:6]}.")
    with embedded_stack(key_prefix=settings.redis_prefix, extra_redis_commands=BENCH_COMMANDS) as stack:
        asyncio.run(ensure_topics(settings, stack.broker_url))
        state = StateRun(stack, settings, hmac_key)
        state.registry.register(MODEL, model, schema=schema, task=task, note="bench state: bootstrap")
        port = free_port()
        state.worker = start_worker(worker_env(settings, stack, hmac_key, port), stack.workdir / "worker.log")
        try:
            wait_for_port(port, timeout=60, proc=state.worker)
            memory, growth = asyncio.run(_phases(state, pairs[:warmup], pairs[warmup:], labelled))
        finally:
            stop_process(state.worker)
            state.redis.close()
    base, waiting, learned = (memory[p]["used_memory"] for p in ("baseline", "waiting", "learned"))
    return {
        "events": events,
        "warmup": warmup,
        "features": len(schema.kinds),
        "redis_used_memory": {"baseline": base, "waiting": waiting, "learned": learned},
        "redis_bytes_by_family": {phase: figures["by_family"] for phase, figures in memory.items()},
        "redis_bytes_per_waiting_event": round((waiting - base) / events, 1),
        "redis_bytes_after_learning_ratio": round(learned / base, 3),
        **growth,
    }
