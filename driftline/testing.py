"""Test a stage without a broker: an in-memory source of Kafka-like records and an in-memory producer.

:class:`InMemorySource` hands out records the way the worker's consumer does (topic, partition, offset, key,
value, timestamp, headers: aiokafka's ``ConsumerRecord`` shape, which the pure stages read) and keeps the offsets
committed. :class:`InMemoryProducer` stands in for aiokafka's producer under the worker's own
:class:`~driftline.streams.publisher.Publisher`, so what a test reads back went through the same publishing code
(keys, partitions, dead-letter headers) as on Kafka. As Bytewax's ``testing`` module and Faust's
``Agent.test_context()``, for unit tests; integration tests use the real broker (``tests/harness.py``).

Examples
--------
The scoring stage on two messages, one of them not JSON, published as the worker publishes them:

>>> import asyncio
>>> from driftline.contract.records import DLQ_ERROR_CLASS
>>> from driftline.models.features import FeatureSchema
>>> from driftline.models.specs import build_model
>>> from driftline.models.version import ModelVersion
>>> from driftline.streams.publisher import Publisher
>>> from driftline.streams.scoring_stage import LoadedModel, ScoringPolicy, model_names, score_records
>>> schema = FeatureSchema({"x": "numeric"})
>>> meta = ModelVersion("default", 1, None, 0, "", "", "binary", schema.to_dict())
>>> loaded = LoadedModel(meta, build_model(schema, "binary"))
>>> source = InMemorySource("events")
>>> source.extend([b'{"event_id": "e1", "ts": 1, "features": {"x": 0.5}}', b"not json"])
>>> batch = source.poll()
>>> policy = ScoringPolicy(default_model="default", max_ts_past_ms=None)
>>> scored = score_records(batch, model_names(batch, policy)[1], {"default": loaded}.get, policy)
>>> producer = InMemoryProducer()
>>> async def publish():
...     publisher = Publisher(producer)
...     await publisher.send_many("predictions", scored.predictions)
...     await publisher.send_dead_letters("dead-letter", scored.dead_letters)
...     await publisher.flush()
>>> asyncio.run(publish())
>>> source.commit(batch)
>>> [r.key for r in producer.published("predictions")], producer.published("dead-letter")[0].header(DLQ_ERROR_CLASS)
([b'e1'], 'JSONDecodeError')
>>> source.committed, source.pending()
({('events', 0): 2}, 0)
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InMemoryRecord:
    """One record as a consumer reads it (the fields of aiokafka's ``ConsumerRecord`` the stages use)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> str | None:
        """The text of header ``name`` (None when absent)."""
        return next((v.decode() for k, v in self.headers if k == name), None)


@dataclass
class InMemorySource:
    """Records of one topic in memory, polled in batches as the worker's source polls them, with commits.

    Records go to partition 0 unless a ``partition`` is given; offsets count up per partition.
    """

    topic: str
    records: list[InMemoryRecord] = field(default_factory=list)
    #: (topic, partition) -> next offset to read, as Kafka commits it
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    _position: int = 0

    def send(
        self,
        value: bytes | None,
        key: bytes | None = None,
        partition: int = 0,
        timestamp: int = 0,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> InMemoryRecord:
        """Append one record and return it."""
        offset = sum(1 for r in self.records if r.partition == partition)
        record = InMemoryRecord(self.topic, partition, offset, key, value, timestamp, tuple(headers))
        self.records.append(record)
        return record

    def extend(self, values: Iterable[bytes | None]) -> None:
        """Append unkeyed records to partition 0."""
        for value in values:
            self.send(value)

    def poll(self, max_records: int | None = None) -> list[InMemoryRecord]:
        """The next records not read yet (at most ``max_records``), oldest first."""
        end = len(self.records) if max_records is None else min(len(self.records), self._position + max_records)
        batch, self._position = self.records[self._position : end], end
        return batch

    def commit(self, batch: Iterable[InMemoryRecord]) -> None:
        """Commit the records of ``batch``: each partition's next offset after its last record."""
        for record in batch:
            where = (record.topic, record.partition)
            self.committed[where] = max(self.committed.get(where, 0), record.offset + 1)

    def pending(self) -> int:
        """Records not committed yet."""
        return sum(1 for r in self.records if r.offset >= self.committed.get((r.topic, r.partition), 0))


class _Batch:
    """aiokafka's ``BatchBuilder`` as the publisher uses it (never full)."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None, headers: Any = None) -> Any:
        self.items.append((key, value))
        return len(self.items)

    def close(self) -> None:
        """Complete: the publisher closes each batch before sending it (nothing to do in memory)."""


class InMemoryProducer:
    """The part of aiokafka's ``AIOKafkaProducer`` the worker's :class:`~driftline.streams.publisher.Publisher`
    uses; every record sent is kept per topic, acknowledged at once."""

    def __init__(self, partitions: int = 1):
        self.partitions = partitions
        self.topics: dict[str, list[InMemoryRecord]] = defaultdict(list)

    def published(self, topic: str) -> list[InMemoryRecord]:
        """Every record sent to ``topic``, in the order sent."""
        return list(self.topics.get(topic, []))

    def _append(self, topic: str, partition: int, key: bytes | None, value: bytes | None, headers: Any) -> None:
        offset = sum(1 for r in self.topics[topic] if r.partition == partition)
        self.topics[topic].append(InMemoryRecord(topic, partition, offset, key, value, 0, tuple(headers or ())))

    @staticmethod
    def _done() -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Any = None,
        **_: Any,
    ) -> asyncio.Future:
        self._append(topic, partition or 0, key, value, headers)
        return self._done()

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future:
        for key, value in batch.items:
            self._append(topic, partition, key, value, None)
        return self._done()
