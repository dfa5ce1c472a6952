"""Helpers of the integration tests: a worker process, publishing, and reading topics from the beginning."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from driftline.contract.settings import Settings
from driftline.embedded.demo import start_worker
from driftline.embedded.stack import stop_process
from driftline.streams.publisher import MAX_REQUEST_BYTES
from driftline.streams.topics import ensure_topics


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that gives a child process these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"DRIFTLINE_{name.upper()}"] = str(value)
    env.update(extra)
    return env


class WorkerProcess:
    """``driftline worker`` as a child process, stopped or killed by its pid."""

    def __init__(self, settings: Settings, log_dir: Path, **extra_env: str):
        self.env = settings_env(settings, **extra_env)
        self.log_path = log_dir / "worker.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        self.proc = start_worker(self.env, self.log_path)
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=20)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The worker frozen (SIGSTOP) for the duration, then let go (SIGCONT): what happens meanwhile happens
        before it can do anything more."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def dump_stacks(self) -> None:
        """Have the worker print every thread's stack and what each asyncio task awaits to its log (SIGQUIT, see
        ``run_worker``); returns once the dump is written (or after 5 s: a stuck loop prints the threads only)."""
        if not self.alive():
            return
        before = self.log().count("end of asyncio tasks")
        assert self.proc is not None
        self.proc.send_signal(signal.SIGQUIT)
        deadline = time.monotonic() + 5
        while self.log().count("end of asyncio tasks") == before and time.monotonic() < deadline:
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def usable_cores() -> int:
    """CPUs this process may run on (its affinity: a container or ``taskset`` may allow fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 2


@contextlib.contextmanager
def busy_cores(n: int | None = None) -> Iterator[list[subprocess.Popen]]:
    """``n`` (default: every core this process may use) processes spinning a CPU for the duration, stopped by their
    pids: fault tests must hold on a machine whose cores are all busy."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(n or usable_cores())
    ]
    try:
        yield spinners
    finally:
        for proc in spinners:
            stop_process(proc, timeout=5)


def probe(port: int, path: str) -> tuple[int, dict] | None:
    """``GET path`` on a worker's metrics port: (status, JSON body), or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


async def publish(settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    """Publish ``(key, value)`` pairs to the contract topic ``topic``; returns how many."""
    await ensure_topics(settings, settings.broker_url)
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, max_request_size=MAX_REQUEST_BYTES, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(topic), value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def read_until(
    settings: Settings,
    topics: list[str],
    done: Callable[[dict[str, list[ConsumerRecord]]], bool],
    timeout: float = 120.0,
) -> dict[str, list[ConsumerRecord]]:
    """Read contract ``topics`` from the beginning until ``done(records by topic)`` or ``timeout``."""
    seen: dict[str, list[ConsumerRecord]] = {t: [] for t in topics}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_url, enable_auto_commit=False, max_partition_fetch_bytes=MAX_REQUEST_BYTES * 2
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(settings.topic(t), p) for t in topics for p in range(settings.partitions)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while not done(seen) and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).items():
                seen[tp.topic.removeprefix(settings.topic_prefix)].extend(records)
        return seen
    finally:
        await consumer.stop()


def event(i: int, **features: object) -> bytes:
    """A valid event of the bootstrap model's schema (Agrawal features)."""
    values = {
        "salary": 50_000.0 + i,
        "commission": 0.0,
        "age": 40.0,
        "elevel": 2.0,
        "car": 5.0,
        "zipcode": 3.0,
        "hvalue": 100_000.0,
        "hyears": 10.0,
        "loan": 20_000.0,
        **features,
    }
    return json.dumps({"event_id": f"e{i}", "ts": 1_700_000_000_000 + i, "features": values}).encode()


def prediction_ids(records: list[ConsumerRecord]) -> list[str]:
    return [json.loads(r.value)["event_id"] for r in records]
