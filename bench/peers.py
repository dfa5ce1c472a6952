"""`driftline bench peers`: driftline's worker against the stream processors a user would pick instead.

Every system gets the same events, pre-loaded in a fresh 4-partition topic of the embedded broker, and the same
model (the bootstrap model), and runs in its own process; the systems take turns round after round (interleaved),
so a busy machine slows them alike. One run of one system:

1. ``events`` events are published to a fresh ``events`` topic before the system starts;
2. the system starts and scores them into ``predictions``; ``eps`` is the rate at which it writes their outputs,
   from the :data:`WARMUP`-th output to the last (start-up and group join excluded), and ``cpu_us_per_event`` the
   system process's CPU time (user + system, from ``/proc``) over the same stretch, per event. Both are
   least-squares slopes (:func:`fitted_rates`) over samples (:class:`Sample`) taken at each read of the bench's
   consumer: the outputs written so far (the high watermarks the broker's last fetch responses carried) beside the
   CPU time, so a consumer that falls behind (a busy machine) cannot shift them, nor a system's bursts of output;
3. ``latency_events`` more events are published at ``rate`` events/s; ``p50_ms``/``p99_ms`` are event published
   -> output received;
4. the system is stopped; ``missing`` counts events without an output, ``duplicates`` outputs beyond one per
   event; ``max_score_diff`` is the largest difference to driftline's score for the same event (same model).

Per system, the figures are the medians over the rounds (``missing``/``duplicates``: the sum).

The systems: ``driftline`` (``driftline worker`` as users run it: validation, join records in Redis, monitors,
offsets committed after the acknowledgements), the same with the scorer's Kafka client chosen
(``driftline_aiokafka``, ``driftline_confluent``: ``DRIFTLINE_KAFKA_CLIENT``) and the peers of
:mod:`driftline.bench.peer_systems`, which only score.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import statistics
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from driftline.bench.pipeline import cpu_seconds
from driftline.contract.settings import Settings
from driftline.embedded.demo import start_worker, worker_env
from driftline.embedded.stack import CHILD_PYTHON, EmbeddedStack, embedded_stack, free_port, stop_process
from driftline.models.bootstrap import synthetic_stream
from driftline.streams.topics import ensure_topics

#: driftline's worker with its scorer's source and sink on one Kafka client each (``DRIFTLINE_KAFKA_CLIENT``);
#: ``driftline`` runs the default client.
CLIENTS = {"driftline_aiokafka": "aiokafka", "driftline_confluent": "confluent"}
SYSTEMS = ("driftline", *CLIENTS, "quix", "bytewax", "raw_confluent")
#: The module each peer needs (installed by ``pip install 'driftline[bench]'``).
REQUIRES = {"quix": "quixstreams", "bytewax": "bytewax", "raw_confluent": "confluent_kafka"}
#: Outputs received before the clock starts (start-up, group join and first fetches excluded).
WARMUP = 1000
#: Seconds a run may take to deliver every output before it counts as failed.
RUN_TIMEOUT = 600.0


class UntimedRun(RuntimeError):
    """A run whose outputs past the warm-up all came at once: too few events to time."""


class MissingExtras(RuntimeError):
    """A peer's client library is not installed."""


def check_installed(systems: Sequence[str]) -> None:
    """Raise :class:`MissingExtras` naming what to install when a chosen peer's library is missing.

    >>> check_installed(["driftline"])
    >>> check_installed(["nosuch"])
    Traceback (most recent call last):
    ...
    ValueError: unknown system 'nosuch'; choose among driftline, driftline_aiokafka, driftline_confluent, quix, ...
    """
    for system in systems:
        if system not in SYSTEMS:
            raise ValueError(f"unknown system {system!r}; choose among {', '.join(SYSTEMS)}")
    missing = [REQUIRES[s] for s in systems if s in REQUIRES and importlib.util.find_spec(REQUIRES[s]) is None]
    if missing:
        raise MissingExtras(f"{', '.join(missing)} not installed: pip install 'driftline[bench]'")


def interleaved(systems: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """``(round, system)`` in run order: every system once per round, the order rotated from round to round.

    >>> interleaved(["a", "b", "c"], 2)
    [(0, 'a'), (0, 'b'), (0, 'c'), (1, 'b'), (1, 'c'), (1, 'a')]
    """
    return [(r, systems[(r + i) % len(systems)]) for r in range(rounds) for i in range(len(systems))]


def percentile_ms(latencies_s: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of latencies given in seconds, in milliseconds (None without any).

    >>> percentile_ms([0.001, 0.002, 0.003], 50), percentile_ms([], 99)
    (2.0, None)
    """
    return round(float(np.percentile(np.asarray(latencies_s) * 1000, q)), 2) if len(latencies_s) else None


@dataclass
class Outputs:
    """What came out of one run, per event key: arrival times, count and score."""

    arrived: dict[bytes, float] = field(default_factory=dict)
    counts: Counter[bytes] = field(default_factory=Counter)
    scores: dict[bytes, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """At ``time`` (perf_counter seconds), ``written`` outputs were on the broker and the system had used ``cpu``
    seconds (None without ``/proc``)."""

    time: float
    written: int
    cpu: float | None


def fitted_rates(samples: Sequence[Sample], first: int, last: int) -> tuple[float, float | None] | None:
    """Outputs written a second and CPU seconds an output, each the least-squares slope over the samples from the
    first with at least ``first`` written to the first with at least ``last`` (None when no two samples of that
    stretch differ in time and outputs). A slope, not the two ends: a system that writes in bursts (driftline's
    scorer, 4 partitions x 2,000 events) has done the work of the burst the first sample falls in before it.

    >>> steps = [Sample(0.0, 0, 1.0), Sample(0.1, 3000, 1.1), Sample(0.11, 4000, 1.11)]
    >>> steps += [Sample(0.2, 7000, 1.2), Sample(0.21, 8000, 1.21), Sample(0.3, 11000, 1.3), Sample(0.31, 12000, 1.31)]
    >>> eps, cpu = fitted_rates(steps, 1000, 12000)
    >>> round(eps), round(cpu * 1e6, 1), round((12000 - 3000) / (0.31 - 0.1))  # 4,000 every 0.1 s; the two ends
    (40224, 24.9, 42857)
    >>> fitted_rates(steps[:2], 1000, 12000) is None, fitted_rates([Sample(0.0, 0, 1.0), Sample(0.1, 9, 2.0)], 1, 9)
    (True, None)
    """
    start = next((i for i, x in enumerate(samples) if x.written >= first), None)
    end = next((i for i, x in enumerate(samples) if x.written >= last), None)
    if start is None or end is None or end - start < 1:
        return None
    stretch = samples[start : end + 1]
    times = np.array([x.time for x in stretch])
    times -= times.mean()
    spread = float(times @ times)
    eps = float(times @ np.array([x.written for x in stretch], dtype=float)) / spread if spread > 0 else 0.0
    if eps <= 0:
        return None
    cpus = [x.cpu for x in stretch]
    cpu = None if None in cpus else float(times @ np.array(cpus, dtype=float)) / spread / eps
    return eps, cpu


def summary(systems: Sequence[str], runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Median figures per system over its runs; missing and duplicate outputs summed.

    >>> runs = [{"system": "a", "eps": 10.0, "cpu_us_per_event": 2.0, "p50_ms": 1.0, "p99_ms": 3.0, "missing": 0,
    ...          "duplicates": 1, "max_score_diff": 0.0}, {"system": "a", "eps": 30.0, "cpu_us_per_event": 4.0,
    ...          "p50_ms": 2.0, "p99_ms": 5.0, "missing": 0, "duplicates": 0, "max_score_diff": None}]
    >>> figures = summary(["a"], runs)["a"]
    >>> figures["eps"], figures["cpu_us_per_event"], figures["p99_ms"], figures["duplicates"], figures["runs"]
    (20.0, 3.0, 4.0, 1, 2)
    """
    out: dict[str, dict[str, Any]] = {}
    for system in systems:
        mine = [r for r in runs if r["system"] == system]

        def median(key: str, mine: list[dict[str, Any]] = mine) -> float | None:
            values = [r[key] for r in mine if r[key] is not None]
            return round(statistics.median(values), 2) if values else None

        diffs = [r["max_score_diff"] for r in mine if r["max_score_diff"] is not None]
        out[system] = {
            "eps": median("eps"),
            "cpu_us_per_event": median("cpu_us_per_event"),
            "p50_ms": median("p50_ms"),
            "p99_ms": median("p99_ms"),
            "missing": sum(r["missing"] for r in mine),
            "duplicates": sum(r["duplicates"] for r in mine),
            "runs": len(mine),
            "max_score_diff": max(diffs) if diffs else None,
        }
    return out


class Bench:
    """The embedded stack, the events, and one run of a system at a time."""

    def __init__(self, stack: EmbeddedStack, events: int, latency_events: int, rate: float):
        self.stack = stack
        # The backlog happened before the bench starts (its last event 1 ms before), as a backlog does, so the paced
        # events (stamped as they are sent) come after it in event time. Stamped from now on, the 60,000 events of
        # the backlog ran up to a minute ahead of the clock, and the paced events of a system's first run were late
        # for driftline's monitors (held behind the watermark of the event order) though sent after the backlog.
        stream = [
            e
            for e, _ in synthetic_stream(
                events + latency_events, drift_at=events + latency_events, start_ms=int(time.time() * 1000) - events
            )
        ]
        self.events = [(e["event_id"].encode(), orjson.dumps(e)) for e in stream[:events]]
        self.paced = stream[events:]
        self.rate = rate
        self.hmac_key = secrets.token_hex(16)
        self.reference: dict[bytes, float] = {}  # driftline's score per event, once it ran

    def start(self, system: str, settings: Settings, log: Path) -> subprocess.Popen:
        if system == "driftline" or system in CLIENTS:
            env = worker_env(settings, self.stack, self.hmac_key, free_port())
            if system in CLIENTS:
                env["DRIFTLINE_KAFKA_CLIENT"] = CLIENTS[system]
            return start_worker(env, log)
        command = [
            *CHILD_PYTHON,
            "-m",
            "driftline.bench.peer_systems",
            system,
            self.stack.broker_url,
            settings.topic("events"),
            settings.topic("predictions"),
            f"{settings.topic_prefix}{system}",
        ]
        with log.open("ab") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def run_one(self, system: str, round_: int) -> dict[str, Any]:
        settings = Settings(topic_prefix=f"peers{uuid.uuid4().hex[:8]}.")
        names = [settings.topic("events"), settings.topic("predictions")]
        asyncio.run(ensure_topics(settings, self.stack.broker_url, names))
        asyncio.run(self._preload(settings.topic("events")))
        log = self.stack.workdir / f"{system}-{round_}.log"
        proc = self.start(system, settings, log)
        try:
            outputs, sent_at, samples = asyncio.run(self._drive(settings, proc, log))
        finally:
            stop_process(proc)
        return self._figures(system, round_, outputs, sent_at, samples)

    async def _preload(self, topic: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.broker_url, linger_ms=5, max_batch_size=256 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key) for key, value in self.events]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def _drive(
        self, settings: Settings, proc: subprocess.Popen, log: Path
    ) -> tuple[Outputs, dict[bytes, float], list[Sample]]:
        """Collect the outputs of the pre-loaded events (sampling how fast they are written), then of the paced
        ones; returns them, when those were sent and the samples."""
        outputs = Outputs()
        topic = settings.topic("predictions")
        consumer = AIOKafkaConsumer(bootstrap_servers=self.stack.broker_url, fetch_max_wait_ms=10)
        producer = AIOKafkaProducer(bootstrap_servers=self.stack.broker_url, linger_ms=0)
        try:
            await consumer.start()
            await producer.start()
            consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
            samples: list[Sample] = []
            await self._collect(consumer, outputs, proc, log, len(self.events), samples)
            sent_at: dict[bytes, float] = {}
            total = len(self.events) + len(self.paced)
            sender = asyncio.create_task(self._send_paced(producer, settings.topic("events"), sent_at))
            await self._collect(consumer, outputs, proc, log, total)
            await sender
            await self._drain(consumer, outputs)
            return outputs, sent_at, samples
        finally:
            await producer.stop()
            await consumer.stop()

    async def _send_paced(self, producer: AIOKafkaProducer, topic: str, sent_at: dict[bytes, float]) -> None:
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        for i, event in enumerate(self.paced):
            delay = started + i / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key = f"lat-{i:08d}".encode()
            value = orjson.dumps({**event, "event_id": key.decode(), "ts": now_ms + i})
            sent_at[key] = time.perf_counter()
            await producer.send(topic, value, key=key)
        await producer.flush()

    async def _collect(
        self,
        consumer: AIOKafkaConsumer,
        outputs: Outputs,
        proc: subprocess.Popen,
        log: Path,
        until: int,
        samples: list[Sample] | None = None,
    ) -> None:
        """Read outputs until ``until`` distinct events have one; into ``samples``, after each read, the outputs
        written so far (the sum of the partitions' high watermarks) and the system's CPU time."""
        deadline = time.perf_counter() + RUN_TIMEOUT
        partitions = list(consumer.assignment())
        while len(outputs.arrived) < until:
            if proc.poll() is not None:
                raise RuntimeError(f"{log.stem} exited with {proc.returncode}: {_tail(log)}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{log.stem}: {len(outputs.arrived)}/{until} outputs in {RUN_TIMEOUT:.0f} s")
            self._take(await consumer.getmany(timeout_ms=100, max_records=10_000), outputs)
            if samples is not None:
                written = sum(consumer.highwater(tp) or 0 for tp in partitions)
                samples.append(Sample(time.perf_counter(), written, cpu_seconds(proc.pid)))

    async def _drain(self, consumer: AIOKafkaConsumer, outputs: Outputs) -> None:
        """Read what is still on its way (late duplicates) until a poll comes back empty."""
        while True:
            fetched = await consumer.getmany(timeout_ms=500, max_records=10_000)
            if not fetched:
                return
            self._take(fetched, outputs)

    @staticmethod
    def _take(fetched: dict[Any, list[Any]], outputs: Outputs) -> None:
        now = time.perf_counter()
        for records in fetched.values():
            for record in records:
                outputs.counts[record.key] += 1
                if record.key not in outputs.arrived:
                    outputs.arrived[record.key] = now
                    outputs.scores[record.key] = orjson.loads(record.value).get("score")

    def _figures(
        self, system: str, round_: int, outputs: Outputs, sent_at: dict[bytes, float], samples: list[Sample]
    ) -> dict[str, Any]:
        if max((x.written for x in samples), default=0) < len(self.events):  # every output was read
            raise RuntimeError(f"{system}: every output was read but the broker's high watermarks fell short")
        rates = fitted_rates(samples, WARMUP, len(self.events))
        if rates is None:  # e.g. a few thousand events, scored in batches of up to 2,000
            raise UntimedRun(
                f"{system}: every output after the first {WARMUP} was written between two reads, so no rate "
                f"can be timed; use more --events than {len(self.events)}"
            )
        eps, cpu = rates
        expected = [k for k, _ in self.events] + list(sent_at)
        if system == "driftline":
            self.reference = {k: outputs.scores[k] for k, _ in self.events}
        diffs = [abs(outputs.scores[k] - s) for k, s in self.reference.items() if outputs.scores.get(k) is not None]
        return {
            "system": system,
            "round": round_,
            "eps": round(eps, 1),
            "cpu_us_per_event": None if cpu is None else round(cpu * 1e6, 1),
            "p50_ms": percentile_ms([outputs.arrived[k] - t for k, t in sent_at.items()], 50),
            "p99_ms": percentile_ms([outputs.arrived[k] - t for k, t in sent_at.items()], 99),
            "missing": sum(1 for k in expected if k not in outputs.arrived),
            "duplicates": sum(outputs.counts.values()) - len(outputs.counts),
            "max_score_diff": max(diffs) if diffs else None,
            "load_average": round(os.getloadavg()[0], 2),
        }


def _tail(log: Path, chars: int = 600) -> str:
    """The end of a system's log, after the line where a driftline worker says which service crashed and why
    (its shutdown afterwards may log tracebacks that hide it)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    why = next((line for line in text.splitlines() if " crashed: " in line), "")
    return f"{why}\n...{text[-chars:]}" if why else text[-chars:]


def run(
    events: int = 60_000,
    rounds: int = 3,
    rate: float = 1000.0,
    latency_events: int = 5000,
    systems: Sequence[str] = SYSTEMS,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every system in ``systems``, ``rounds`` times, interleaved; returns the per-run figures and the medians."""
    check_installed(systems)
    if events <= WARMUP:
        raise ValueError(f"--events must be more than the {WARMUP} warm-up outputs")
    runs: list[dict[str, Any]] = []
    with embedded_stack(key_prefix="peers") as stack:
        bench = Bench(stack, events, latency_events, rate)
        # driftline's scores are the reference of max_score_diff: it comes first in the first round
        order = interleaved(sorted(systems, key=SYSTEMS.index), rounds)
        for round_, system in order:
            figures = bench.run_one(system, round_)
            runs.append(figures)
            if progress is not None:
                progress(figures)
    return {
        "events": events,
        "latency_events": latency_events,
        "latency_rate_eps": rate,
        "rounds": rounds,
        "partitions": Settings().partitions,
        "runs": runs,
        "systems": summary(systems, runs),
    }
