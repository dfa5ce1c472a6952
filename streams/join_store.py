"""What a label is joined to: each scored event's prepared features, served prediction and model version,
kept in Redis under ``{prefix}join:{model}:{event_id}``.

A record expires from Redis twice the label TTL after it was written; the record itself says when its label
becomes late (``expires_ms``), so a late label is told apart from one whose event was never seen.
When Redis is unreachable, writes wait in a buffer. After a failed write, or while a write is still waiting for
Redis (a hung server answers nothing until the socket timeout), the scorer only buffers, so scoring keeps its
pace; the next batch after ``retry_seconds``, and the worker's timer, retry. The buffer never drops a record: once
it holds ``max_buffered`` records it is :attr:`JoinStore.full` and the scorer pauses consumption until Redis
took them (back-pressure; ``driftline_join_buffered`` and ``driftline_consumption_paused`` say so).

>>> JoinRecord.from_json(JoinRecord({"x": 1.0}, True, {"True": 0.9}, 0.9, 3, 10).to_json()).version
3
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Sequence

import redis
import redis.asyncio as aioredis

from driftline.contract import keys
from driftline.streams.learning_stage import JoinRecord
from driftline.streams.metrics import JOIN_BUFFERED, REDIS_ERRORS

log = logging.getLogger(__name__)

#: Records written to Redis in one command when a buffer is flushed.
FLUSH_CHUNK = 5_000
#: Seconds after a failed write during which batches only buffer (the timer still retries).
RETRY_SECONDS = 1.0
SET_MANY_WITH_TTL = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', ARGV[1])
end
return #KEYS
"""


class JoinStore:
    """Redis-backed join records, written by scorers and read by the learner."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        ttl_seconds: int,
        retry_seconds: float = RETRY_SECONDS,
        max_buffered: int = 200_000,
    ):
        self.client = client
        self.prefix = prefix
        self.redis_ttl = 2 * ttl_seconds
        self.retry_seconds = retry_seconds
        self.max_buffered = max_buffered
        self._buffer: collections.deque[tuple[str, bytes]] = collections.deque()
        self._set_many = client.register_script(SET_MANY_WITH_TTL)
        self._flushing = asyncio.Lock()
        self._retry_at = 0.0

    def key(self, model: str, event_id: str) -> str:
        return keys.join(self.prefix, model, event_id)

    @property
    def buffered(self) -> int:
        """Writes waiting for Redis to come back."""
        return len(self._buffer)

    @property
    def full(self) -> bool:
        """The buffer holds ``max_buffered`` records or more: the scorer must not consume until it drains."""
        return len(self._buffer) >= self.max_buffered

    async def put_many(self, model: str, records: list[tuple[str, JoinRecord]]) -> None:
        """Store records (event_id, record); never raises: on Redis errors they are kept and retried.

        Only buffers while another write is waiting for Redis or ``retry_seconds`` after a failed one.
        """
        await self.put_encoded(model, [event_id for event_id, _ in records], [r.to_json() for _, r in records])

    async def put_encoded(self, model: str, event_ids: Sequence[str], values: Sequence[bytes]) -> None:
        """:meth:`put_many` for records already encoded (``JoinRecord.to_json``), one per event id."""
        self._buffer.extend(zip([keys.join(self.prefix, model, e) for e in event_ids], values, strict=True))
        JOIN_BUFFERED.set(len(self._buffer))
        if self._flushing.locked() or time.monotonic() < self._retry_at:
            return
        await self.flush()

    async def flush(self) -> int:
        """Write the buffered records; never raises (on Redis errors they stay buffered). Returns how many are left.

        Called by the scorer with each batch, and by a timer and the learner so that writes buffered during an
        outage reach Redis even when no event follows; one flush at a time.
        """
        async with self._flushing:
            while self._buffer:
                # records are only appended meanwhile: the first len(pending) are the ones written
                pending = list(itertools.islice(self._buffer, FLUSH_CHUNK))
                try:
                    # One command per chunk: a server-side loop of SET ... EX (pipelined SETs cost ~10x more CPU)
                    await self._set_many(keys=[k for k, _ in pending], args=[self.redis_ttl, *(v for _, v in pending)])
                except (redis.RedisError, OSError) as exc:
                    self._retry_at = time.monotonic() + self.retry_seconds
                    REDIS_ERRORS.labels("join_write").inc()
                    log.warning("join store unreachable, %d writes buffered: %r", len(self._buffer), exc)
                    break
                for _ in pending:
                    self._buffer.popleft()
            JOIN_BUFFERED.set(len(self._buffer))
            return len(self._buffer)

    async def get_many(self, model: str, event_ids: list[str]) -> list[JoinRecord | None]:
        """The join records of ``event_ids`` (None where absent); raises redis errors to the caller."""
        if not event_ids:
            return []
        raw = await self.client.mget([self.key(model, e) for e in event_ids])
        return [JoinRecord.from_json(r) if r is not None else None for r in raw]
