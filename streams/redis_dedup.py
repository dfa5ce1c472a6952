"""Alert deduplication across workers and partitions, on event time, in the shared Redis.

Of several workers that detect the same drift within the cooldown (``ttl_ms`` of *event time*) only one
publishes: a Lua script compares the event time of the claim with the one stored under the key (see
:mod:`driftline.monitoring.dedup`), so a replay dedups the same at any speed. The key's Redis expiry is only
housekeeping (``ttl_ms`` plus a day of wall-clock time, longer than any replay of the cooldown).
If Redis is unavailable it does not raise: it falls back to a local
:class:`~driftline.monitoring.dedup.InMemoryDeduplicator`, counts the fallback in
:attr:`RedisDeduplicator.fallbacks`, and leaves Redis alone for ``retry_after`` seconds (a dead Redis costs one
timeout, not one per alert).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from driftline.contract import keys
from driftline.monitoring.dedup import InMemoryDeduplicator

log = logging.getLogger(__name__)


#: KEYS[1] the claim; ARGV: event time, ttl (ms of event time), housekeeping expiry (ms). 1 when claimed.
CLAIM = """
local at = redis.call('GET', KEYS[1])
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if at and math.abs(now - tonumber(at)) < ttl then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""
#: Wall-clock lifetime of a claim beyond its event-time ttl (housekeeping only).
HOUSEKEEPING_MS = 24 * 3600 * 1000


class RedisDeduplicator:
    """Dedup across workers with a compare-and-set script on a synchronous :class:`redis.Redis` client.

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
        self._claim = client.register_script(CLAIM)
        self.fallbacks = 0

    def first(self, key: str, ttl_ms: int, now_ms: int) -> bool:
        if self._clock() < self._down_until:
            self.fallbacks += 1
            return self._local.first(key, ttl_ms, now_ms)
        try:
            ttl = max(1, int(ttl_ms))
            claimed = self._claim(keys=[self._prefix + key], args=[int(now_ms), ttl, ttl + HOUSEKEEPING_MS])
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
