"""The last phase of `driftline bench state`: a long labelled stream through the same worker, and what grows.

After the memory phases, ``labelled`` more events and their labels go through the worker (the labels of each
chunk once its events are scored, so none waits for its event). At three marks, 1%, 10% and 100% of them (10k,
100k and 1M with ``--labelled 1000000``), once every event so far is scored and every label learned:

- ``worker_rss_mib``: the worker process's resident memory (``VmRSS``);
- ``versions_kept``: the versions of the model the registry holds (the learner registers one every 1,000 labels
  and prunes to ``DRIFTLINE_KEEP_VERSIONS`` besides the pinned ones);
- ``reload_check_ms`` and ``reload_check_min_ms``: the median and the shortest of 30 timings of what a worker reads
  when a new version becomes current (its current and challenger pointers, the verified version, its reference
  profile), timed in this process against the same Redis, and ``reload_check_round_trips``, the Redis round trips
  it makes (the same at every mark: the reference is found in two reads, however long the lineage).

Then ``rss_ratio_1m_100k`` is the RSS at the last mark over the second, and ``reload_check_ratio_1m_10k`` the
shortest reload check at the last mark over the first: the check's own cost. The median's ratio,
``reload_check_median_ratio_1m_10k``, also carries what else the machine ran meanwhile (a busy core can hold a
timing for milliseconds).

>>> marks(1_000_000), marks(500)
([10000, 100000, 1000000], [5, 50, 500])
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from driftline.models.bootstrap import synthetic_stream

if TYPE_CHECKING:
    from driftline.bench.state import StateRun

#: Events published before their labels are (each chunk's labels follow once its events are scored).
CHUNK = 10_000
#: Timed repetitions of the reload check at each mark (the median is reported).
RELOAD_REPEATS = 30


def marks(labelled: int) -> list[int]:
    """The event counts at which the figures are taken: 1%, 10% and 100% of ``labelled``."""
    return [max(1, labelled // 100), max(1, labelled // 10), labelled]


def worker_rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", status)
    if found is None:
        raise RuntimeError(f"no VmRSS for process {pid}")
    return round(int(found.group(1)) / 1024, 1)


def reload_check(run: StateRun, name: str) -> None:
    """What a worker reads when a new version of ``name`` becomes current: its current and challenger pointers, the
    version's metadata and blob (verified; unpickling it costs the same whatever the history) and its reference."""
    registry = run.registry
    registry.current_version(name)
    registry.challenger_version(name)
    meta = registry.verify(name)
    registry.reference(name, meta.version)


def reload_check_ms(run: StateRun, name: str, repeats: int = RELOAD_REPEATS) -> dict[str, float]:
    """The median and the shortest milliseconds of :func:`reload_check` over ``repeats`` timings."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reload_check(run, name)
        times.append(time.perf_counter() - start)
    return {
        "reload_check_ms": round(statistics.median(times) * 1000, 3),
        "reload_check_min_ms": round(min(times) * 1000, 3),
    }


def round_trips(client: redis.Redis, action: Callable[[], object]) -> int:
    """Redis round trips ``action`` makes through ``client`` (a command, or a pipeline, each one)."""
    count = 0
    send, pipeline = client.execute_command, client.pipeline

    def counted(call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            count += 1
            return call(*args, **kwargs)

        return wrapper

    client.execute_command, client.pipeline = counted(send), counted(pipeline)  # type: ignore[method-assign]
    try:
        action()
    finally:
        del client.execute_command, client.pipeline
    return count


def _stream(labelled: int) -> Iterator[list[tuple[dict[str, Any], bool]]]:
    """``labelled`` events with their labels in chunks (each mark ends one), ids apart from the earlier phases'."""
    size = max(1, min(CHUNK, labelled // 100))
    chunk: list[tuple[dict[str, Any], bool]] = []
    for event, y in synthetic_stream(labelled, drift_at=labelled, seed=11):
        chunk.append(({**event, "event_id": "long-" + event["event_id"]}, y))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def grow(run: StateRun, producer: Any, labelled: int, name: str, before: int) -> dict[str, Any]:
    """Publish the long stream after ``before`` events already scored and learned; the figures at each mark."""
    from driftline.bench.state import _event, _label

    todo, taken, published = marks(labelled), [], 0
    previous: list[tuple[dict[str, Any], bool]] = []
    for chunk in _stream(labelled):
        await run.publish(producer, [_event(e) for e, _ in chunk] + [_label(e, y) for e, y in previous])
        published += len(chunk)
        total = before + published
        await run.wait("every long-run event scored", lambda total=total: len(run.tally.scored) >= total)
        previous = chunk
        while todo and todo[0] <= published:
            mark = todo.pop(0)
            await run.publish(producer, [_label(e, y) for e, y in previous])
            previous = []
            await run.wait("every long-run label learned", lambda total=total: run.learned() >= total)
            taken.append(
                {
                    "events": mark,
                    "worker_rss_mib": worker_rss_mib(run.worker.pid),
                    "versions_kept": len(run.registry.versions(name)),
                    **reload_check_ms(run, name),
                    "reload_check_round_trips": round_trips(run.redis, lambda: reload_check(run, name)),
                }
            )
    first, second, last = taken
    return {
        "labelled": labelled,
        "marks": taken,
        "versions_kept": last["versions_kept"],
        "keep_versions": run.settings.keep_versions,
        "pinned_versions": len(run.registry.pinned(name)),
        "rss_ratio_1m_100k": round(last["worker_rss_mib"] / second["worker_rss_mib"], 3),
        "reload_check_ratio_1m_10k": round(last["reload_check_min_ms"] / first["reload_check_min_ms"], 3),
        "reload_check_median_ratio_1m_10k": round(last["reload_check_ms"] / first["reload_check_ms"], 3),
    }
