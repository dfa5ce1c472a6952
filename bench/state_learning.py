"""The learner's speed in `driftline bench state`: a backlog of labels through the live worker.

The labels of the scored events are published while the worker process is paused (``SIGSTOP``), so the backlog
waits in the broker whole; then the worker resumes and learns it. ``learn_labels_per_s`` is labels learned per
second from the first to the last checkpoint of the backlog (the learner writes ``learned`` with each checkpoint:
the first one comes after the consumer is back and its first batch is learned), ``learn_cpu_us_per_label`` the
worker process's CPU time (user + system, from ``/proc``) from resume to the last checkpoint per label: unlike
labels/s, it does not depend on how busy the machine is. The worker learns with its default settings (a model
version every 1,000 labels, a checkpoint at most every 500 ms).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Protocol

from driftline.bench.pipeline import cpu_seconds


class _Run(Protocol):
    worker: Any

    def learned(self) -> int: ...

    async def wait(self, what: str, done: Any) -> None: ...

    async def publish(self, producer: Any, messages: list[tuple[str, bytes, bytes]]) -> None: ...


async def learn_backlog(
    run: _Run, producer: Any, labels: list[tuple[str, bytes, bytes]], total: int
) -> dict[str, float | int]:
    """Publish ``labels`` while the worker is paused, resume it, wait until ``total`` labels are learned; the
    learner's figures (see the module docstring)."""
    pid = run.worker.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        await run.publish(producer, labels)
        published = time.perf_counter() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed_at, cpu_before, base = time.perf_counter(), cpu_seconds(pid), run.learned()
    await run.wait("the first checkpoint of the label backlog", lambda: run.learned() > base)
    first_at, first = time.perf_counter(), run.learned()
    await run.wait("every label of the backlog learned", lambda: run.learned() >= total)
    last_at, last, cpu_after = time.perf_counter(), run.learned(), cpu_seconds(pid)
    # the whole backlog in one checkpoint: from resume (the consumer's return to its group included)
    rate = (last - first) / (last_at - first_at) if last > first else (last - base) / (last_at - resumed_at)
    figures: dict[str, float | int] = {
        "learn_backlog_labels": len(labels),
        "learn_labels_per_s": round(rate, 1),
        "learn_labels_per_s_from_resume": round((last - base) / (last_at - resumed_at), 1),
        "labels_published_per_s": round(len(labels) / published, 1),
    }
    if cpu_before is not None and cpu_after is not None:
        figures["learn_cpu_us_per_label"] = round((cpu_after - cpu_before) / max(last - base, 1) * 1e6, 1)
    return figures
