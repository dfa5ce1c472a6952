"""confluent-kafka (librdkafka) behind the part of ``AIOKafkaConsumer`` that
:class:`~driftline.streams.batch_source.BatchSource` uses: the scorer's source when ``DRIFTLINE_KAFKA_CLIENT`` is
``confluent``.

librdkafka fetches, decompresses and parses in its own threads; what is left on the event loop is turning its
messages into records. Its calls block, so they run on threads of their own: ``poll``/``consume`` (and ``close``)
on one, commits and committed-offset look-ups on another (a commit never waits behind a poll). The rest (pause,
resume, seek, cached watermarks) returns at once and is called from the loop.

Rebalances: librdkafka calls ``on_assign``/``on_revoke`` inside ``poll``, on the poll thread. The callback runs
the listener's coroutine on the event loop and waits for it, so the assignment changes only once the listener is
done: the listener takes the batch source's ``in_flight`` lock, so a revoke first lets the batch in flight
finish and commit, and an assignment never runs during a batch (as with aiokafka's coordinator task). A listener
that raises is logged and the rebalance goes on, as aiokafka does. While the consumer closes, the listener is not
called (the source finished, flushed and committed everything before it closes the consumer).

Errors come out as aiokafka's, which the source already handles: a failed poll as :class:`KafkaError` (retried),
a commit refused because the group moved on as :class:`CommitFailedError`; a commit that failed for a retriable
reason (broker restarting, coordinator moving) is tried again until it succeeds or the consumer closes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable
from typing import Any

import confluent_kafka as ck
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from driftline.streams.event_order import DECODED

log = logging.getLogger(__name__)

#: Commit errors that mean the group rebalanced under us: the new owner re-reads from the last commit.
_GROUP_MOVED = frozenset(
    {
        ck.KafkaError.ILLEGAL_GENERATION,
        ck.KafkaError.UNKNOWN_MEMBER_ID,
        ck.KafkaError.REBALANCE_IN_PROGRESS,
        ck.KafkaError._ASSIGNMENT_LOST,
        ck.KafkaError._STATE,
    }
)
#: Pause between two tries of a commit that failed for a retriable reason.
COMMIT_RETRY_SECONDS = 0.2
#: The longest a single ``poll`` waits (a longer fetch timeout polls again until it is over or the consumer stops).
POLL_SLICE_SECONDS = 0.2


def librdkafka_warning(version: str | None = None) -> str:
    """What the worker logs when it runs the scorer on librdkafka (``version``: the installed one): no version
    measured so far passed every fault test.

    >>> librdkafka_warning("2.12.1")[:52]
    'DRIFTLINE_KAFKA_CLIENT=confluent is experimental (li'
    """
    return (
        f"DRIFTLINE_KAFKA_CLIENT=confluent is experimental (librdkafka {version or ck.libversion()[0]}): librdkafka "
        "2.12.1 crashed the worker (segmentation fault) when the broker was killed and restarted empty, and with "
        "2.16.0 a worker joining the scoring group got no partitions (docs/ARCHITECTURE.md)"
    )


class KafkaRecord:
    """One consumed message, with the fields of aiokafka's ``ConsumerRecord`` the scorer reads (and a slot for
    the value :func:`~driftline.streams.event_order.event_time` decodes)."""

    __slots__ = ("topic", "partition", "offset", "key", "value", "timestamp", "headers", DECODED)

    def __init__(self, message: ck.Message) -> None:
        self.topic: str = message.topic()
        self.partition: int = message.partition()
        self.offset: int = message.offset()
        self.key: bytes | None = message.key()
        self.value: bytes | None = message.value()
        self.timestamp: int = message.timestamp()[1]
        self.headers: list[tuple[str, bytes]] | None = message.headers()


class ConfluentConsumer:
    """A librdkafka consumer of a group, with the methods of ``AIOKafkaConsumer`` a batch source calls.

    ``config``: librdkafka properties (``group.id``, ``bootstrap.servers``...; see
    :meth:`driftline.streams.app.Worker.score_consumer`). Offsets are committed only by :meth:`commit`.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = {**config, "enable.auto.commit": False, "enable.auto.offset.store": False}
        self._consumer: ck.Consumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: ConsumerRebalanceListener | None = None
        self._assignment: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._partitions: dict[tuple[str, int], TopicPartition] = {}
        self._poller = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kafka-poll")
        self._committer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kafka-commit")
        #: Set once :meth:`stop` began: rebalance callbacks no longer call the listener, commits stop retrying.
        self._closing = False
        #: The listener call a rebalance callback waits for, if any (cancelled by :meth:`stop`).
        self._listening: concurrent.futures.Future | None = None
        self._listening_lock = threading.Lock()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumer = ck.Consumer(self.config, logger=log)

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener | None = None) -> None:
        """Join the group for ``topics``; ``listener`` hears of each revoke and assignment before it takes effect."""
        assert self._consumer is not None, "start() first"
        self._listener = listener
        self._consumer.subscribe(topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    # --- rebalances (on the poll thread, inside poll) ----------------------------------------
    def _on_assign(self, _consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        assigned = {self._partition(p.topic, p.partition) for p in partitions}
        self._assignment = assigned
        if self._listener is not None:
            self._call_listener(self._listener.on_partitions_assigned(set(assigned)), "assignment")

    def _on_revoke(self, _consumer: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        revoked = {self._partition(p.topic, p.partition) for p in partitions}
        if self._listener is not None:
            self._call_listener(self._listener.on_partitions_revoked(set(revoked)), "revoke")
        self._assignment -= revoked
        self._paused -= revoked

    def _call_listener(self, call: Awaitable[None], what: str) -> None:
        """Run ``call`` on the event loop and wait for it (this thread is librdkafka's, inside ``poll``)."""
        assert self._loop is not None
        with self._listening_lock:
            if self._closing:
                call.close()  # type: ignore[attr-defined] # a coroutine never awaited
                return
            self._listening = asyncio.run_coroutine_threadsafe(call, self._loop)  # type: ignore[arg-type]
        try:
            self._listening.result()
        except concurrent.futures.CancelledError:
            log.info("consumer closing: %s listener cancelled", what)
        except Exception:  # noqa: BLE001 - as aiokafka: logged, the rebalance goes on
            log.exception("the %s listener failed", what)
        finally:
            self._listening = None

    # --- consuming -----------------------------------------------------------------------------
    async def getmany(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list[KafkaRecord]]:
        """Up to ``max_records`` records, per partition in offset order; waits up to ``timeout_ms`` for the first."""
        assert self._loop is not None
        messages = await self._loop.run_in_executor(self._poller, self._fetch, max_records, timeout_ms / 1000)
        fetched: dict[TopicPartition, list[KafkaRecord]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaError(f"consumer failed: {error.str()}")
                if error.code() != ck.KafkaError._PARTITION_EOF:
                    log.warning("consumer: %s", error.str())
                continue
            tp = self._partition(message.topic(), message.partition())
            records = fetched.get(tp)
            if records is None:
                records = fetched[tp] = []
            records.append(KafkaRecord(message))
        return fetched

    def _fetch(self, max_records: int, timeout: float) -> list[ck.Message]:
        """What is there: waits for the first message only (``consume(n, timeout)`` would wait for ``n``), in
        slices of at most :data:`POLL_SLICE_SECONDS`, so that a stop never waits for a long poll."""
        assert self._consumer is not None
        deadline = time.monotonic() + timeout
        try:
            while (first := self._consumer.poll(min(POLL_SLICE_SECONDS, timeout))) is None:
                timeout = deadline - time.monotonic()
                if timeout <= 0 or self._closing:
                    return []
            return [first, *self._consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]
        except ck.KafkaException as exc:
            raise KafkaError(f"poll failed: {exc}") from exc
        except RuntimeError as exc:  # "Consumer closed"
            raise KafkaError(f"poll failed: {exc}") from exc

    def _partition(self, topic: str, partition: int) -> TopicPartition:
        tp = self._partitions.get((topic, partition))
        if tp is None:
            tp = self._partitions[(topic, partition)] = TopicPartition(topic, partition)
        return tp

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *partitions: TopicPartition) -> None:
        assert self._consumer is not None
        partitions = tuple(tp for tp in partitions if tp in self._assignment)
        if partitions:
            self._consumer.pause([ck.TopicPartition(tp.topic, tp.partition) for tp in partitions])
            self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        assert self._consumer is not None
        partitions = tuple(tp for tp in partitions if tp in self._assignment)
        if partitions:
            self._consumer.resume([ck.TopicPartition(tp.topic, tp.partition) for tp in partitions])
            self._paused.difference_update(partitions)

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's high watermark as of the last fetch response (None before one)."""
        assert self._consumer is not None
        try:
            _, high = self._consumer.get_watermark_offsets(ck.TopicPartition(tp.topic, tp.partition), cached=True)
        except ck.KafkaException:
            return None
        return high if high >= 0 else None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` next (what was fetched after it is dropped)."""
        assert self._consumer is not None
        try:
            self._consumer.seek(ck.TopicPartition(tp.topic, tp.partition, offset))
        except ck.KafkaException as exc:
            raise KafkaError(f"seek {tp} to {offset} failed: {exc}") from exc

    async def seek_to_committed(self) -> dict[TopicPartition, int | None]:
        """Read every assigned partition from its committed offset; the committed offsets (None: none), as
        aiokafka's, which seeks only where one > 0 is committed (the caller seeks the rest to the beginning)."""
        assert self._consumer is not None and self._loop is not None
        assigned = [ck.TopicPartition(tp.topic, tp.partition) for tp in self._assignment]
        if not assigned:
            return {}
        consumer = self._consumer
        answered = await self._loop.run_in_executor(self._committer, lambda: consumer.committed(assigned, 30))
        committed = {self._partition(p.topic, p.partition): p.offset if p.offset >= 0 else None for p in answered}
        for tp, offset in committed.items():
            if offset:
                self.seek(tp, offset)
        return committed

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Read ``partitions`` from their first offset next."""
        for tp in partitions:
            self.seek(tp, ck.OFFSET_BEGINNING)

    # --- committing ----------------------------------------------------------------------------
    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read per partition) and wait for the broker's answer."""
        assert self._loop is not None
        if offsets:
            await self._loop.run_in_executor(self._committer, self._commit, offsets)

    def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        partitions = [ck.TopicPartition(tp.topic, tp.partition, offset) for tp, offset in offsets.items()]
        while True:
            try:
                answered = self._consumer.commit(offsets=partitions, asynchronous=False)
            except ck.KafkaException as exc:
                error: ck.KafkaError = exc.args[0]
            else:
                failed = [p for p in answered or () if p.error is not None]
                if not failed:
                    return
                error = failed[0].error
            if error.code() in _GROUP_MOVED:
                raise CommitFailedError(error.str())
            if error.code() == ck.KafkaError._NO_OFFSET:
                return
            if not error.retriable() or self._closing:
                raise KafkaError(f"commit failed: {error.str()}")
            log.warning("commit failed, trying again: %s", error.str())
            time.sleep(COMMIT_RETRY_SECONDS)

    # --- stopping ------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Leave the group and close (a listener call waiting for the event loop is cancelled: the source
        finished and committed what it had before stopping the consumer)."""
        with self._listening_lock:
            self._closing = True
            if self._listening is not None:
                self._listening.cancel()
        if self._consumer is not None and self._loop is not None:
            await self._loop.run_in_executor(self._poller, self._consumer.close)
        self._poller.shutdown(wait=False)
        self._committer.shutdown(wait=False)
