"""Reading and replaying the dead-letter topic on a broker (aiokafka): the I/O under ``driftline dlq``.

The decisions (what to replay, the counts, the descriptions) are the pure :mod:`driftline.streams.dlq`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

from driftline.contract.settings import Settings
from driftline.streams.connections import kafka_kwargs, log_end_offsets
from driftline.streams.dlq import DeadLetterInfo, ReplayCounts, ReplayPolicy, describe, replay_headers

StopReason = Literal["drained", "max", "timeout", "missing"]
FETCH_RECORDS = 500


@dataclass
class _Reader:
    """A consumer assigned every partition of one topic, reading until it has caught up with the end offsets
    it saw at the start, read ``limit`` messages, or passed its deadline."""

    consumer: AIOKafkaConsumer
    partitions: list[TopicPartition]
    end: dict[TopicPartition, int]
    limit: int | None
    deadline: float
    read: int = 0
    stopped: StopReason | None = None

    async def caught_up(self) -> bool:
        for tp in self.partitions:
            if await self.consumer.position(tp) < self.end[tp]:
                return False
        return True

    async def batches(self) -> AsyncIterator[list[ConsumerRecord]]:
        """Batches in offset order per partition; sets :attr:`stopped` when done."""
        while True:
            if self.limit is not None and self.read >= self.limit:
                self.stopped = "max"
                return
            if await self.caught_up():
                self.stopped = "drained"
                return
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.stopped = "timeout"
                return
            want = FETCH_RECORDS if self.limit is None else min(FETCH_RECORDS, self.limit - self.read)
            fetched = await self.consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000), max_records=want)
            batch = [record for tp in sorted(fetched) for record in fetched[tp] if record.offset < self.end[tp]]
            if batch:
                self.read += len(batch)
                yield batch


@asynccontextmanager
async def _reader(
    settings: Settings, bootstrap: str, topic: str, group_id: str | None, limit: int | None, timeout: float
) -> AsyncIterator[_Reader | None]:
    """A started :class:`_Reader` of ``topic`` (None when the topic does not exist); stopped on exit."""
    deadline = time.monotonic() + timeout
    consumer = AIOKafkaConsumer(
        **kafka_kwargs(settings, bootstrap),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        request_timeout_ms=max(30_000, settings.session_timeout_ms + 5_000),
    )
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            yield None
            return
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        # Manual assignment: no group join (fast), offsets still committed under ``group_id``.
        consumer.assign(partitions)
        end = await log_end_offsets(
            kafka_kwargs(settings, bootstrap), partitions, max(1.0, deadline - time.monotonic())
        )
        yield _Reader(consumer, partitions, end, limit, deadline)
    finally:
        await consumer.stop()


async def replay_dead_letters(
    settings: Settings,
    bootstrap: str,
    policy: ReplayPolicy,
    group_id: str,
    limit: int | None,
    timeout: float,
    dry_run: bool,
    on_message: Callable[[dict[str, Any], str], None] | None = None,
) -> tuple[ReplayCounts, StopReason]:
    """Replay the dead-letter topic once; return the counts and why it stopped.

    Each batch is re-published and acknowledged by the broker before the batch's offsets are committed
    (at least once: a crash in between replays that batch again). A dry run neither sends nor commits.
    """
    topic = policy.dead_letter_topic
    counts = ReplayCounts()
    async with _reader(settings, bootstrap, topic, group_id, limit, timeout) as reader:
        if reader is None:
            return counts, "missing"
        producer = None if dry_run else AIOKafkaProducer(**kafka_kwargs(settings, bootstrap), acks="all")
        try:
            if producer is not None:
                await producer.start()
            async for batch in reader.batches():
                deliveries = []
                for record in batch:
                    letter = DeadLetterInfo.from_headers(record.headers)
                    decision = policy.decide(letter)
                    target = letter.source_topic if decision == "replay" else None
                    counts.add(decision, target)
                    if on_message is not None:
                        on_message(_describe(record), decision)
                    if producer is not None and target is not None:
                        deliveries.append(
                            await producer.send(
                                target, value=record.value, key=record.key, headers=replay_headers(letter)
                            )
                        )
                if producer is not None:
                    await asyncio.gather(*deliveries)
                    last: dict[TopicPartition, int] = {}
                    for record in batch:
                        last[TopicPartition(record.topic, record.partition)] = record.offset + 1
                    await reader.consumer.commit(last)
        finally:
            if producer is not None:
                await producer.stop()
        assert reader.stopped is not None
        return counts, reader.stopped


async def read_dead_letters(
    settings: Settings, bootstrap: str, topic: str, limit: int | None, timeout: float, stages: frozenset[str]
) -> tuple[list[dict[str, Any]], StopReason]:
    """Descriptions of up to ``limit`` dead letters (of ``stages``, if any), oldest first per partition."""
    found: list[dict[str, Any]] = []
    async with _reader(settings, bootstrap, topic, None, None, timeout) as reader:
        if reader is None:
            return found, "missing"
        async for batch in reader.batches():
            for record in batch:
                description = _describe(record)
                if not stages or description["stage"] in stages:
                    found.append(description)
                if limit is not None and len(found) >= limit:
                    return found, "max"
        assert reader.stopped is not None
        return found, reader.stopped


def _describe(record: ConsumerRecord) -> dict[str, Any]:
    return describe(
        record.topic, record.partition, record.offset, record.timestamp, record.key, record.value, record.headers
    )
