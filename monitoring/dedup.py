"""Alert deduplication: the first to raise an alert key within its time-to-live wins.

:class:`Deduplicator` is the interface; :class:`InMemoryDeduplicator` is the per-process implementation, driven
by the alert timestamps (deterministic, used in tests and benchmarks, and the fallback of the shared one across
workers, :class:`driftline.streams.redis_dedup.RedisDeduplicator`).

Examples
--------
>>> dedup = InMemoryDeduplicator()
>>> dedup.first("m:data_drift:x:ks", ttl_ms=1000, now_ms=0)
True
>>> dedup.first("m:data_drift:x:ks", ttl_ms=1000, now_ms=500)  # a second worker within the cooldown
False
>>> dedup.first("m:data_drift:x:ks", ttl_ms=1000, now_ms=1000)  # expired
True
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Deduplicator(Protocol):
    """Decides whether this worker is the first to raise ``key`` within ``ttl_ms``."""

    def first(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        """True for the first claim of ``key`` until it expires ``ttl_ms`` after that claim."""
        ...


class InMemoryDeduplicator:
    """Dedup within one process; expiry follows the ``now_ms`` clock the caller passes."""

    def __init__(self, max_keys: int = 100_000):
        self._expiry: dict[str, int] = {}
        self._max_keys = max_keys

    def first(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        expiry = self._expiry.get(key)
        if expiry is not None and now_ms < expiry:
            return False
        if len(self._expiry) >= self._max_keys:
            self._expiry = {k: v for k, v in self._expiry.items() if v > now_ms}
        self._expiry[key] = now_ms + max(1, ttl_ms)
        return True
