"""Alert deduplication: the first to raise an alert key within its time-to-live wins.

:class:`Deduplicator` is the interface; :class:`InMemoryDeduplicator` is the per-process implementation (used in
tests and benchmarks, and the fallback of the shared one across workers,
:class:`driftline.streams.redis_dedup.RedisDeduplicator`). Time is *event time*: ``now_ms`` is the event time of
the alert, and a claim blocks the same key for ``ttl_ms`` of event time on both sides (a second worker a little
behind in event time raises the same drift at an earlier event time), so a replay at any speed dedups the same.

Examples
--------
>>> dedup = InMemoryDeduplicator()
>>> dedup.first("m:data_drift:x:ks", ttl_ms=1000, now_ms=0)
True
>>> dedup.first("m:data_drift:x:ks", ttl_ms=1000, now_ms=500)  # a second worker within the cooldown
False
>>> dedup.first("m:data_drift:x:ks", ttl_ms=1000, now_ms=-300)  # a worker behind in event time
False
>>> dedup.first("m:data_drift:x:ks", ttl_ms=1000, now_ms=1000)  # expired
True
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Deduplicator(Protocol):
    """Decides whether this worker is the first to raise ``key`` within ``ttl_ms`` of event time."""

    def first(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        """True unless ``key`` was claimed at an event time less than ``ttl_ms`` from ``now_ms``."""
        ...


class InMemoryDeduplicator:
    """Dedup within one process on the event-time clock the caller passes."""

    def __init__(self, max_keys: int = 100_000):
        self._claimed: dict[str, tuple[int, int]] = {}  # key -> (event time of the claim, ttl)
        self._max_keys = max_keys

    def first(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        claim = self._claimed.get(key)
        if claim is not None and abs(now_ms - claim[0]) < claim[1]:
            return False
        if len(self._claimed) >= self._max_keys:
            self._claimed = {k: (at, ttl) for k, (at, ttl) in self._claimed.items() if abs(now_ms - at) < ttl}
        self._claimed[key] = (now_ms, max(1, ttl_ms))
        return True
