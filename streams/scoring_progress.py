"""How far the scorers have got through ``events``: the join grace counts their progress, not seconds.

A label's event was published before the label, so it lies below the end of the ``events`` log read once the
label is consumed. The scorers commit an offset only once the join records of the events below it are in Redis
(:class:`driftline.streams.batch_source.BatchSource` with ``durable``). So once the scoring group's committed
offsets reach that end, a join record that is still missing will never come: the label is ``UnknownEvent``.
Until then it waits, however slow the machine, unless the scorers make no progress at all for the grace period
(no scorer running).

>>> tp = TopicPartition("events", 0)
>>> caught_up({tp: 120}, {tp: 100}), caught_up({tp: 99}, {tp: 100}), caught_up({}, {tp: 0})
(True, False, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from driftline.contract.settings import Settings


def caught_up(committed: Mapping[TopicPartition, int], target: Mapping[TopicPartition, int]) -> bool:
    """True when every partition's committed offset reached ``target`` (an empty partition needs nothing)."""
    return all(committed.get(tp, 0) >= offset for tp, offset in target.items())


class ScoringProgress:
    """Reads the end offsets of ``events`` and the scoring group's committed offsets."""

    def __init__(self, settings: Settings, kafka: dict[str, Any]):
        topic = settings.topic("events")
        self.partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        self.group = f"{settings.topic_prefix}scoring"
        self.kafka = kafka
        self._admin: AIOKafkaAdminClient | None = None

    async def end_offsets(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Where ``events`` ends now (read with any started consumer)."""
        return await consumer.end_offsets(self.partitions)

    async def committed(self) -> dict[TopicPartition, int]:
        """The scoring group's committed offsets (partitions it never committed are absent)."""
        if self._admin is None:
            admin = AIOKafkaAdminClient(**self.kafka)
            await admin.start()
            self._admin = admin
        offsets = await self._admin.list_consumer_group_offsets(self.group, partitions=self.partitions)
        return {tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0}

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
