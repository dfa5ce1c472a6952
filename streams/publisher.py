"""Batched publishing: send a whole batch without awaiting each record, then wait for every ack once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from driftline.contract.records import Alert, dumps
from driftline.contract.signing import ALERT_SIGNATURE_HEADER, Keyring, sign_alert
from driftline.streams.deadletter import DeadLetter
from driftline.streams.partitioning import default_partitions

#: Dead letters carry the original bytes, which may be far larger than a valid event.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


def producer_for(kafka_kwargs: dict[str, Any]) -> AIOKafkaProducer:
    """An idempotent-free, acks=all producer tuned for batches (linger a few ms, large requests allowed)."""
    return AIOKafkaProducer(
        acks="all", linger_ms=5, max_batch_size=256 * 1024, max_request_size=MAX_REQUEST_BYTES, **kafka_kwargs
    )


class Publisher:
    """Queue records on a producer and wait for all their acknowledgements in one go.

    ``per_record``: :meth:`send_many` queues each record on its own (the HTTP API's publisher). Many small
    concurrent batches (one per request) then join the producer's open batch of their partition: a record batch
    of its own waits until every earlier batch of that partition is sent, so under load requests queued behind
    each other until the producer gave up (``KafkaTimeoutError``).
    """

    def __init__(self, producer: AIOKafkaProducer, per_record: bool = False):
        self.producer = producer
        self.per_record = per_record
        self._pending: list[asyncio.Future] = []

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self._pending.append(await self.producer.send(topic, value=value, key=key, headers=headers))

    async def send_many(self, topic: str, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Keyed records in one record batch per partition: one future per batch instead of one per record
        (measured ~6% of the scorer). Partitions are Kafka's default partitioner's, as with ``send``."""
        if not items:
            return
        if self.per_record:
            for key, value in items:
                await self.send(topic, value, key)
            return
        partitions = sorted(await self.producer.partitions_for(topic))
        batches: dict[int, Any] = {}
        for (key, value), partition in zip(items, default_partitions([k for k, _ in items], partitions), strict=True):
            batch = batches.get(partition)
            if batch is not None and batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            if batch is not None:  # full: send it, start another
                self._pending.append(await self.producer.send_batch(batch, topic, partition=partition))
            batch = batches[partition] = self.producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # larger than a batch: on its own
                del batches[partition]
                self._pending.append(await self.producer.send(topic, value=value, key=key, partition=partition))
        for partition, batch in batches.items():
            self._pending.append(await self.producer.send_batch(batch, topic, partition=partition))

    async def send_dead_letters(self, topic: str, letters: Iterable[DeadLetter]) -> None:
        for letter in letters:
            await self.send(topic, letter.sent_value, letter.sent_key, letter.headers())

    async def send_alerts(self, topic: str, alerts: Iterable[Alert], alert_keys: Keyring) -> None:
        """Typed alerts, keyed by model (one model's alerts stay in order), each signed in a header."""
        for alert in alerts:
            value = dumps(alert)
            signature = sign_alert(alert_keys, value).encode()
            await self.send(topic, value, alert.model.encode(), [(ALERT_SIGNATURE_HEADER, signature)])

    def acknowledged(self) -> asyncio.Future:
        """A future that completes when every record queued so far is acknowledged (fails if one failed)."""
        pending, self._pending = self._pending, []
        return asyncio.gather(*pending)

    async def flush(self) -> None:
        """Wait until every queued record is acknowledged (raises if one failed)."""
        await self.acknowledged()
