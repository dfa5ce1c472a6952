"""Alert deduplication across workers and partitions: ``SET key NX PX ttl`` on the shared Redis.

Of several workers that detect the same drift within the cooldown only one publishes. If Redis is unavailable it
does not raise: it falls back to a local :class:`~driftline.monitoring.dedup.InMemoryDeduplicator`, counts the
fallback in :attr:`RedisDeduplicator.fallbacks`, and leaves Redis alone for ``retry_after`` seconds (a dead Redis
costs one timeout, not one per alert).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from driftline.contract import keys
from driftline.monitoring.dedup import InMemoryDeduplicator

log = logging.getLogger(__name__)


class RedisDeduplicator:
    """Dedup across workers with ``SET NX PX`` on a synchronous :class:`redis.Redis` client.

    Parameters
    ----------
    client
        A ``redis.Redis`` (see :func:`driftline.streams.connections.redis_client`).
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
        prefix: str = keys.alert_dedup("driftline:"),
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
            log.warning(
                "alert dedup: Redis unavailable (%s), deduplicating locally for %.0f s",
                exc.__class__.__name__,
                self._retry_after,
            )
            return self._local.first(key, ttl_ms, now_ms)
        # an alert this worker already raised locally (e.g. while Redis was down) is not raised again
        local = self._local.first(key, ttl_ms, now_ms)
        return bool(claimed) and local
