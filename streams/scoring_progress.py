"""How far the scorers have got through ``events``: the join grace counts their progress, not seconds.

A label's event was published before the label, so it lies below the end of the ``events`` log read once the
label is consumed. The scorers commit an offset only once the join records of the events below it are in Redis
(:class:`driftline.streams.batch_source.BatchSource` with ``durable``). So once the scoring group's committed
offsets reach that end, a join record that is still missing will never come: the label is ``UnknownEvent``.
Until then it waits, however slow the machine.

The log's end is the fetch high watermark (:func:`driftline.streams.connections.fetch_log_ends`): the embedded
broker answers ``ListOffsets(latest)`` short of the end, which would declare the scorers caught up too early.

>>> tp = TopicPartition("events", 0)
>>> caught_up({tp: 120}, {tp: 100}), caught_up({tp: 99}, {tp: 100}), caught_up({}, {tp: 0})
(True, False, True)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaTimeoutError

from driftline.contract.settings import Settings
from driftline.streams.connections import fetch_log_ends

#: Seconds a read of the log ends or of the committed offsets may take before it raises (a retriable error).
READ_TIMEOUT = 10.0


def caught_up(committed: Mapping[TopicPartition, int], target: Mapping[TopicPartition, int]) -> bool:
    """True when every partition's committed offset reached ``target`` (an empty partition needs nothing)."""
    return all(committed.get(tp, 0) >= offset for tp, offset in target.items())


class ScoringProgress:
    """Reads where ``events`` ends and the scoring group's committed offsets (its own clients, opened on first
    use, closed by :meth:`close`)."""

    def __init__(self, settings: Settings, kafka: dict[str, Any]):
        self.topic = settings.topic("events")
        self.default_partitions = settings.partitions
        self.group = f"{settings.topic_prefix}scoring"
        self.kafka = kafka
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def log_ends(self) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition of ``events`` now."""
        return await self._read(self._log_ends(), "the log ends of " + self.topic)

    async def committed(self) -> dict[TopicPartition, int]:
        """The scoring group's committed offsets of ``events`` (partitions it never committed are absent)."""
        return await self._read(self._committed(), f"the offsets of group {self.group}")

    async def _read(self, read: Awaitable[dict[TopicPartition, int]], what: str) -> dict[TopicPartition, int]:
        """``read`` within :data:`READ_TIMEOUT` (else :class:`KafkaTimeoutError`); after any failure the clients
        are closed, and opened again by the next read (e.g. after a broker restart)."""
        try:
            return await asyncio.wait_for(read, READ_TIMEOUT)
        except TimeoutError as exc:
            await self.close()
            raise KafkaTimeoutError(f"{what} not read within {READ_TIMEOUT:g} s") from exc
        except BaseException:
            await self.close()
            raise

    async def _partitions(self) -> list[TopicPartition]:
        """The partitions of ``events`` (the configured count until the broker's metadata says)."""
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(**self.kafka, group_id=None, enable_auto_commit=False)
            await self._consumer.start()
        known = self._consumer.partitions_for_topic(self.topic)
        return [TopicPartition(self.topic, p) for p in sorted(known or range(self.default_partitions))]

    async def _log_ends(self) -> dict[TopicPartition, int]:
        partitions = await self._partitions()
        assert self._consumer is not None
        return await fetch_log_ends(self._consumer, partitions, READ_TIMEOUT / 2)

    async def _committed(self) -> dict[TopicPartition, int]:
        partitions = await self._partitions()  # named: the embedded broker garbles an "every partition" answer
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(**self.kafka)
            await self._admin.start()
        offsets = await self._admin.list_consumer_group_offsets(self.group, partitions=partitions)
        return {tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
