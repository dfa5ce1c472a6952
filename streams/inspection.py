"""Reading a deployment's state for `driftline status` and `driftline trace`: broker, consumer groups, offsets, Redis.

Every call has a deadline: an unreachable broker or Redis raises :class:`StackUnreachable` with one line saying
which and why, never a hang or a traceback.

End offsets are read by :func:`driftline.streams.connections.fetch_log_ends` (the embedded broker's
``ListOffsets(latest)`` falls short of the end).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError

from driftline.contract.settings import Settings
from driftline.contract.urls import masked
from driftline.streams.connections import fetch_log_ends, kafka_kwargs, redis_client
from driftline.streams.partitioning import default_partitions

#: Seconds any one broker or Redis call may take, and a whole scan of a topic.
CALL_TIMEOUT = 10.0
SCAN_SECONDS = 120.0


class StackUnreachable(RuntimeError):
    """The broker or Redis is not configured or cannot be reached (the message is one line)."""


def broker_url(settings: Settings) -> str:
    if settings.broker_url is None:
        raise StackUnreachable("DRIFTLINE_BROKER_URL is not set: point it at the broker the workers use")
    return settings.broker_url


def open_redis(settings: Settings) -> redis.Redis:
    """A Redis client that answered a ping (:class:`StackUnreachable` otherwise)."""
    if settings.redis_url is None:
        raise StackUnreachable("DRIFTLINE_REDIS_URL is not set: point it at the Redis the workers use")
    client = redis_client(settings, settings.redis_url, socket_timeout=CALL_TIMEOUT / 2, retry=False)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StackUnreachable(
            f"Redis at {masked(settings.redis_url)} unreachable: {type(exc).__name__}: {exc}"
        ) from None
    return client


async def _bounded(awaitable: Any, what: str, url: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, CALL_TIMEOUT)
    except (TimeoutError, KafkaError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise StackUnreachable(f"broker at {url} unreachable ({what}): {reason}") from None


class Broker:
    """A consumer (no group) and an admin client on the configured broker, for reading offsets and records."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = broker_url(settings)
        kwargs = {**kafka_kwargs(settings, self.url), "request_timeout_ms": int(CALL_TIMEOUT * 1000)}
        self.consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False, group_id=None)
        self.admin = AIOKafkaAdminClient(**kwargs)

    async def __aenter__(self) -> Broker:
        try:
            await _bounded(self.consumer.start(), "connect", self.url)
            await _bounded(self.admin.start(), "connect", self.url)
        except StackUnreachable:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def call(self, awaitable: Any, what: str) -> Any:
        return await _bounded(awaitable, what, self.url)

    async def partition_of(self, topic: str, key: bytes) -> list[TopicPartition]:
        """The partition Kafka's default partitioner puts ``key`` on in contract ``topic`` (empty: no topic)."""
        partitions = await self.partitions(topic)
        if not partitions:
            return []
        [index] = default_partitions([key], [tp.partition for tp in partitions])
        return [tp for tp in partitions if tp.partition == index]

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The partitions of contract ``topic`` (none when it does not exist yet).

        Asked of the admin client: the consumer's cached metadata only covers the topics it was last assigned.
        """
        name = self.settings.topic(topic)
        [described] = await self.call(self.admin.describe_topics([name]), "metadata")
        if described.get("error_code") or not described.get("partitions"):
            return []
        return [
            TopicPartition(name, p["partition"]) for p in sorted(described["partitions"], key=lambda p: p["partition"])
        ]

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition (see :func:`fetch_log_ends`)."""
        return await self.call(fetch_log_ends(self.consumer, partitions, CALL_TIMEOUT / 2), "end offsets")

    async def read(
        self,
        ranges: dict[TopicPartition, tuple[int, int]],
        keep: Callable[[ConsumerRecord], bool],
        seconds: float = SCAN_SECONDS,
    ) -> list[ConsumerRecord]:
        """The records in ``[start, end)`` of each partition for which ``keep`` is true (at most ``seconds`` of
        reading: :class:`StackUnreachable` past it)."""
        todo = {tp: span for tp, span in ranges.items() if span[0] < span[1]}
        if not todo:
            return []
        self.consumer.assign(list(todo))
        for tp, (start, _) in todo.items():
            self.consumer.seek(tp, start)
        kept: list[ConsumerRecord] = []
        deadline = time.monotonic() + seconds
        while todo:
            if time.monotonic() > deadline:
                raise StackUnreachable(
                    f"broker at {self.url}: reading {sorted(t.topic for t in todo)} took over {seconds:g} s"
                )
            batches = await self.call(self.consumer.getmany(*todo, timeout_ms=500, max_records=5000), "fetch")
            for tp, records in batches.items():
                end = todo.get(tp, (0, 0))[1]
                kept += [r for r in records if r.offset < end and keep(r)]
            for tp in list(todo):
                if await self.consumer.position(tp) >= todo[tp][1]:
                    del todo[tp]
        return kept

    async def committed(self, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The offsets ``group`` committed on ``partitions`` (None where it committed none)."""
        if not partitions:
            return {}
        offsets = await self.call(self.admin.list_consumer_group_offsets(group, partitions=partitions), "offsets")
        return {tp: (offsets[tp].offset if tp in offsets and offsets[tp].offset >= 0 else None) for tp in partitions}

    async def members(self, group: str) -> tuple[str, list[dict[str, Any]]]:
        """The state of ``group`` and its members, with their assigned partitions when the broker says them."""
        responses = await self.call(self.admin.describe_consumer_groups([group]), "describe group")
        for response in responses:
            for _, name, state, _, _, members in response.groups:
                if name == group:
                    return state, [_member(*m) for m in members]
        return "Dead", []


def _member(member_id: str, client_id: str, host: str, _metadata: bytes, assignment: bytes) -> dict[str, Any]:
    partitions: list[int] | None = None
    if assignment:
        decoded = ConsumerProtocolMemberAssignment.decode(assignment)
        partitions = sorted(p for _, parts in decoded.assignment for p in parts)
    return {"member_id": member_id, "client_id": client_id, "host": host, "partitions": partitions}


def lag_rows(
    ends: dict[TopicPartition, int], positions: dict[TopicPartition, int | None]
) -> list[dict[str, int | None]]:
    """One row per partition: position, end and lag (None when the group has no position there).

    >>> tp = TopicPartition("t", 0)
    >>> lag_rows({tp: 10}, {tp: 7}), lag_rows({tp: 10}, {tp: None})
    ([{'partition': 0, 'position': 7, 'end': 10, 'lag': 3}], [{'partition': 0, 'position': None, 'end': 10, 'lag': 10}])
    """
    rows = []
    for tp in sorted(ends, key=lambda t: t.partition):
        position = positions.get(tp)
        end = ends[tp]
        rows.append({"partition": tp.partition, "position": position, "end": end, "lag": end - (position or 0)})
    return rows


def total(values: Iterable[int | None]) -> int:
    return sum(v or 0 for v in values)
