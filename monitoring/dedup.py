"""Alert deduplication across workers and partitions: the first worker to raise an alert key wins.

Two implementations of one interface, :class:`Deduplicator`:

* :class:`InMemoryDeduplicator`: per process, driven by the alert timestamps (deterministic, used in tests,
  benchmarks and as the fallback);
* :class:`RedisDeduplicator`: ``SET key 1 NX PX ttl`` on a shared Redis, so of several workers that detect
  the same drift within the cooldown only one publishes. If Redis is unavailable it does not raise: it falls
  back to its local deduplicator and counts the fallback in :attr:`RedisDeduplicator.fallbacks`, and leaves
  Redis alone for ``retry_after`` seconds (a dead Redis costs one timeout, not one per alert).

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

import logging
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import redis

log = logging.getLogger(__name__)

#: Key prefix of alert dedup keys in Redis.
REDIS_PREFIX = "driftline:alert-dedup:"


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


class RedisDeduplicator:
    """Dedup across workers with ``SET NX PX`` on a synchronous :class:`redis.Redis` client.

    Parameters
    ----------
    client
        A ``redis.Redis`` (see :func:`driftline.connections.redis_client`).
    prefix
        Key prefix (namespaces deployments sharing a Redis).
    retry_after
        Seconds to deduplicate locally after a Redis failure before trying Redis again.
    clock
        Monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = REDIS_PREFIX,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client = client
        self._prefix = prefix
        self._local = InMemoryDeduplicator()
        self._retry_after, self._clock = retry_after, clock
        self._down_until = float("-inf")
        self.fallbacks = 0

    def first(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        if self._clock() < self._down_until:
            self.fallbacks += 1
            return self._local.first(key, ttl_ms, now_ms)
        try:
            claimed = self._client.set(self._prefix + key, str(now_ms), nx=True, px=max(1, int(ttl_ms)))
        except (redis.RedisError, OSError) as exc:
            self.fallbacks += 1
            self._down_until = self._clock() + self._retry_after
            log.warning("alert dedup: Redis unavailable (%s), deduplicating locally for %.0f s",
                        exc.__class__.__name__, self._retry_after)  # fmt: skip
            return self._local.first(key, ttl_ms, now_ms)
        # an alert this worker already raised locally (e.g. while Redis was down) is not raised again
        local = self._local.first(key, ttl_ms, now_ms)
        return bool(claimed) and local
