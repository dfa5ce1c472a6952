"""A Faust service that feeds a batch handler from a consumer's ``getmany`` with manual commits (aiokafka's, or
another client with the same methods: ``new_consumer``, e.g. the scorer's librdkafka consumer).

Faust's per-event stream path costs ~200 µs an event (measured on 2 cores); this service keeps Faust as the
application (lifecycle, worker, services) while the hot path reads whole batches. Delivery is at-least-once:

* the handler queues its output and returns an awaitable that completes when that output is acknowledged;
  the source handles the next batches meanwhile (I/O overlaps compute: up to ``max_in_flight`` batches wait for
  their acknowledgements at once), and commits a batch's offsets only once its acknowledgements, and those of
  every batch before it, are in. Commits run in the background, one at a time, and are awaited before a revoke
  and at stop;
* when partitions are revoked or the service stops, the batch in flight is finished and committed first; the
  hook of an assignment (``on_assigned``) also waits for it, and no batch is handled while it runs;
* records of partitions no longer assigned are dropped before handling (the new owner reads them again);
* a batch whose handler raises one of ``retry_on`` (e.g. Redis unreachable) is not committed: its partitions
  are rewound to the batch's first offsets and it is handled again after ``retry_pause`` seconds (the handler
  must leave no half-applied state behind); a flush (``on_flush``) failing with one of them is tried again on a
  later idle poll. Any other exception crashes the service;
* an idle poll awaits ``on_flush`` (and the acknowledgements and the commit of every batch before it), or with
  ``on_idle`` only calls it: a hook that starts what it persists in the background and returns (the scorer's join
  writes, which a hung or failing-over Redis can hold for seconds: the idle poll must not wait for them, or no
  event is scored meanwhile), and waits for nothing else either: acknowledgements and commits go on in the
  background as between batches. Revokes and stops still await ``on_flush``, the acknowledgements and the commit;
* with ``flush_every``, a flush also runs that often between batches, so what was deferred is persisted even
  when no idle poll comes (the learner's deferred checkpoints);
* with ``backpressure``, the source pauses its partitions while it says True (a store it writes to is full) and
  resumes them once it says False; it keeps polling meanwhile, so it stays in its group, and flushes;
* with ``durable``, called right after each batch is handled, a batch's offsets are committed only once the
  check it returned says that what the batch stored outside Kafka (the scorer's join records, written in the
  background) has reached its store: until then they are held, and committed by a later batch or idle poll, so
  a worker killed meanwhile reads those records again instead of losing what they stored;
* with ``ordered``, the partitions are consumed timestamp-synchronised (KIP-353,
  :class:`driftline.streams.event_order.EventTimeMerger`): batches hold records in time order (``order_by`` of
  each record, by default its Kafka timestamp; the scorer orders by the events' ``ts``; ``order_many``, when
  given, reads those of a fetch's records at once) across the assigned partitions, partitions far ahead are left
  out of ``getmany`` (paused with another client), and offsets are committed up to the records handed over (what
  is still buffered is read again by the next owner).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import operator
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from driftline.streams.event_order import EventTimeMerger, kafka_timestamp
from driftline.streams.metrics import BATCH_SIZE, CONSUMER_LAG, CONSUMPTION_PAUSED

log = logging.getLogger(__name__)

#: The record of a ``(partition, record)`` pair.
_RECORD = operator.itemgetter(1)

#: Handles a batch; returns an awaitable that completes when everything the batch produced is acknowledged.
BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[Awaitable[object] | None]]
#: True when everything a handled batch stored outside Kafka is durable (its offsets may be committed).
DurableCheck = Callable[[], bool]
#: A handled batch: its acknowledgements, its next offsets and its durable check.
Pending = tuple["asyncio.Future[object] | None", dict[TopicPartition, int], DurableCheck | None]
AssignedHook = Callable[[AIOKafkaConsumer, set[TopicPartition]], Awaitable[None]]
#: Persists what the handler deferred; called between batches: on an idle poll (unless ``on_idle``), before a
#: revoke, at stop.
FlushHook = Callable[[], Awaitable[object]]
#: Called right after a batch is handled: the check that says when what it stored outside Kafka is durable.
DurableMark = Callable[[], DurableCheck]
#: True while consumption must pause (a store the handler writes to is full).
BackpressureCheck = Callable[[], bool]
#: Told that the service crashed, and why (the worker then reports it and stops).
CrashHook = Callable[["BatchSource", BaseException], Awaitable[None]]
#: Builds the consumer (not started), e.g. :class:`~driftline.streams.confluent_consumer.ConfluentConsumer`: an
#: object with the methods of ``AIOKafkaConsumer`` this service calls (start, subscribe, getmany, assignment,
#: paused, pause, resume, highwater, seek, seek_to_committed, seek_to_beginning, commit, stop).
ConsumerFactory = Callable[[], Any]


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, source: BatchSource):
        self.source = source

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.source.in_flight:  # let the batches being handled finish and commit
            await self.source.finish_pending()
            await self.source.flush()
            await self.source.commit_held(wait=True)
            revoked = set(revoked)  # not durable yet: the next owner reads them again from the last commit
            self.source.held = [
                ({tp: o for tp, o in offsets.items() if tp not in revoked}, check)
                for offsets, check in self.source.held
            ]
            if self.source.merger is not None:
                self.source.merger.drop(revoked)
                self.source.ahead -= set(revoked)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        # Never while a batch is handled: the hook may replace what the handler works on (the learner reloads its
        # checkpoints and seeks to them). aiokafka runs this in its coordinator's task, beside the consume loop;
        # a handler that went on learning into the replaced state had its labels counted, its checkpoint written
        # from the reloaded one and the consumer already past them: learned by no checkpoint, read by no one.
        async with self.source.in_flight:
            self.source.assigned = set(assigned)
            if self.source.on_assigned is not None:
                await self.source.on_assigned(self.source.consumer, set(assigned))


class BatchSource(mode.Service):
    """Consume ``topics`` in consumer group ``group_id`` and pass record batches to ``handler``."""

    def __init__(
        self,
        *,
        name: str,
        consumer_kwargs: dict[str, Any],
        topics: list[str],
        group_id: str,
        handler: BatchHandler,
        on_assigned: AssignedHook | None = None,
        on_flush: FlushHook | None = None,
        on_idle: Callable[[], None] | None = None,
        flush_every: float | None = None,
        durable: DurableMark | None = None,
        commit_to_kafka: bool = True,
        max_records: int = 500,
        max_in_flight: int = 3,
        timeout_ms: int = 50,
        retry_on: tuple[type[BaseException], ...] = (),
        retry_pause: float = 1.0,
        on_crash: CrashHook | None = None,
        backpressure: BackpressureCheck | None = None,
        ordered: bool = False,
        order_by: Callable[[Any], int] | None = None,
        order_many: Callable[[list[Any]], Iterable[int]] | None = None,
        new_consumer: ConsumerFactory | None = None,
        **kwargs: Any,
    ) -> None:
        self.source_name = name
        self.consumer_kwargs = consumer_kwargs
        self.new_consumer = new_consumer
        self.topics = topics
        self.group_id = group_id
        self.handler = handler
        self.on_assigned = on_assigned
        self.on_flush = on_flush
        self.on_idle = on_idle
        self.flush_every = flush_every
        self.durable = durable
        #: Acknowledged batches, oldest first: their offsets wait for their durable checks before a commit.
        self.held: list[tuple[dict[TopicPartition, int], DurableCheck | None]] = []
        self.commit_to_kafka = commit_to_kafka
        self.max_records = max_records
        self.max_in_flight = max_in_flight
        self.timeout_ms = timeout_ms
        self.retry_on = retry_on
        self.retry_pause = retry_pause
        self.retries = 0
        self.on_crash = on_crash
        self.backpressure = backpressure
        #: Partitions of the last assignment; None until the consumer joined its group.
        self.assigned: set[TopicPartition] | None = None
        self.in_flight = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        #: Handled batches waiting for their acknowledgements, oldest first.
        self.pending: collections.deque[Pending] = collections.deque()
        #: The commit running in the background, if any (one at a time).
        self.committing: asyncio.Task | None = None
        #: Timestamp-synchronised consumption (``ordered``): what was fetched and not handed over yet, and the
        #: partitions paused because they are far ahead of the others.
        self.merger = (
            EventTimeMerger(
                max_buffered=4 * max_records, idle_polls=10, time_of=order_by or kafka_timestamp, times_of=order_many
            )
            if ordered
            else None
        )
        self.ahead: set[TopicPartition] = set()
        self.held_back = False  # paused by back-pressure
        super().__init__(**kwargs)

    @property
    def label(self) -> str:
        return f"BatchSource[{self.source_name}]"

    async def on_start(self) -> None:
        if self.new_consumer is not None:  # another client (its own settings; commits are manual too)
            self.consumer = self.new_consumer()
        else:
            self.consumer = AIOKafkaConsumer(
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **self.consumer_kwargs,
            )
        await self.consumer.start()
        # Subscribed once started: start() would otherwise wait for the group's first assignment (the embedded
        # broker takes ~5 s to form a group), and a worker's sources start one after another: 5 s each.
        # Assigned in the background, each source's group joins at the same time as the others'.
        self.consumer.subscribe(self.topics, listener=_Rebalance(self))

    async def on_stop(self) -> None:
        if self.consumer is not None:
            async with self.in_flight:
                await self.finish_pending()
                await self.flush()
                await self.commit_held(wait=True)
                await self.consumer.stop()

    async def crash(self, reason: BaseException) -> None:
        """A task of this service raised (mode marks it crashed): tell ``on_crash``."""
        first = not self.crashed
        await super().crash(reason)
        if first and self.on_crash is not None:
            await self.on_crash(self, reason)

    async def flush(self) -> None:
        """Let the handler persist what it deferred (no batch is in flight when this runs)."""
        if self.on_flush is not None:
            await self.on_flush()

    @mode.Service.task
    async def _flush_now_and_then(self) -> None:
        """With ``flush_every``: persist what the handler deferred at least that often, also when no idle poll
        comes (a fetch that keeps returning records, or one that does not return); never while a batch, an idle
        poll or a revoke holds the source (they flush, or defer again, themselves)."""
        if self.flush_every is None:
            return
        while not self.should_stop:
            await self.sleep(self.flush_every)
            if self.in_flight.locked() or self.should_stop:
                continue
            async with self.in_flight:
                try:
                    await self.flush()
                except self.retry_on as exc:  # what was deferred stays deferred: flushed later
                    log.warning("%s: flush failed, trying again later: %r", self.label, exc)

    @mode.Service.task
    async def _consume(self) -> None:
        assert self.consumer is not None
        consumer = self.consumer
        while not self.should_stop:
            if self.backpressure is not None:
                self._pause_or_resume(consumer)
            asked = self._asked(consumer)
            # the merge holds a batch already: take what the client has at once, never wait for more
            ready = self._merge_ready(consumer)
            try:
                if asked == ():  # every partition far ahead: nothing is fetched, the merge goes on with its buffers
                    fetched = {}
                else:
                    fetched = await consumer.getmany(
                        *(asked or ()), timeout_ms=0 if ready else self.timeout_ms, max_records=self.max_records
                    )
            except (KafkaError, IllegalStateError) as exc:  # transient broker trouble: retry, never crash
                log.warning("%s: fetch failed: %r", self.label, exc)
                await asyncio.sleep(0.5)
                continue
            failed = False
            async with self.in_flight:
                assigned = consumer.assignment()
                if self.merger is not None:  # timestamp order across partitions
                    # a poll that did not wait and brought nothing says nothing of its partitions: no idle poll
                    taken = self._in_time_order(consumer, fetched, assigned, () if ready and not fetched else asked)
                else:
                    taken = [(tp, r) for tp, rs in fetched.items() if tp in assigned for r in rs]
                records = list(map(_RECORD, taken))
                # each partition's first and last record handed over (dict() of the pairs keeps the last one)
                last: dict[TopicPartition, ConsumerRecord] = dict(taken)
                if records:
                    BATCH_SIZE.labels(self.source_name).observe(len(records))
                    try:
                        acked = await self.handler(records)
                    except self.retry_on as exc:
                        failed = True
                        if self.merger is not None:  # taken again from the buffers, no seek
                            self.retries += 1
                            log.warning("%s: batch failed, handling it again: %r", self.label, exc)
                            self.merger.requeue(taken)
                        else:
                            self._rewind(consumer, dict(reversed(taken)), exc)
                    else:
                        offsets = {tp: record.offset + 1 for tp, record in last.items()}
                        check = self.durable() if self.durable is not None else None
                        future = asyncio.ensure_future(acked) if acked is not None else None
                        self.pending.append((future, offsets, check))
                        self._export_lag(consumer, last)
                idle = not (fetched or asked == () or ready)
                if idle and self.on_idle is None:
                    # everything handled is acknowledged, flushed and committed before the next poll
                    await self.finish_pending()
                    failed = await self._flush_idle() or failed
                    await self.commit_held(wait=True)
                else:  # with on_idle, an idle poll waits for nothing either: see _flush_idle
                    await self._settle(keep=self.max_in_flight)
                    if idle:
                        failed = await self._flush_idle() or failed
                    await self.commit_held()
            if failed:  # outside the lock: a rebalance or a stop need not wait for the pause
                await self.sleep(self.retry_pause)

    async def _flush_idle(self) -> bool:
        """Persist what the handler deferred on an idle poll: :meth:`flush`, or with ``on_idle`` (the scorer) only
        start what the hook persists in the background. A source with ``on_idle`` waits for nothing on an idle poll,
        neither the acknowledgements of the batches in flight nor a commit (both go on in the background, as between
        batches; a later poll commits them once acknowledged and durable). Waiting for them held the scorer's next
        fetch: at 1,000 events/s a poll that came back empty on a busy machine then waited 10-98 ms for
        acknowledgements and the commit's round trip before fetching again, and every event published meanwhile
        waited too (the p99 of `bench peers`). Returns whether it failed with one of ``retry_on`` (what was deferred
        stays deferred, for a later poll)."""
        try:
            if self.on_idle is not None:
                self.on_idle()
            else:
                await self.flush()
        except self.retry_on as exc:
            self.retries += 1
            log.warning("%s: flush failed, trying again in %.1f s: %r", self.label, self.retry_pause, exc)
            return True
        return False

    def _pause_or_resume(self, consumer: AIOKafkaConsumer) -> None:
        """Pause every assigned partition while ``backpressure`` says so (newly assigned ones too); resume after."""
        assert self.backpressure is not None
        paused, assigned = consumer.paused(), consumer.assignment()
        if self.backpressure():
            if paused != assigned:
                if not self.held_back:
                    log.warning("%s: pausing consumption until the join store drains (back-pressure)", self.label)
                consumer.pause(*assigned)
                CONSUMPTION_PAUSED.labels(self.source_name).set(1)
            self.held_back = True
        elif self.held_back:
            log.warning("%s: resuming consumption", self.label)
            # partitions far ahead in time stay paused (with a client whose partitions far ahead are paused)
            consumer.resume(*(paused if isinstance(consumer, AIOKafkaConsumer) else paused - self.ahead))
            CONSUMPTION_PAUSED.labels(self.source_name).set(0)
            self.held_back = False

    def _asked(self, consumer: AIOKafkaConsumer) -> tuple[TopicPartition, ...] | None:
        """The partitions the next ``getmany`` takes records of: None for every one; with ``ordered`` and an
        aiokafka consumer, those not far ahead of the others (an empty tuple when every one is).

        A partition far ahead is left out of ``getmany`` rather than paused: aiokafka drops what it fetched of a
        paused partition (``FetchResult.check_assignment``) and fetches it again once resumed, up to
        ``max_partition_fetch_bytes`` (8 MiB) each time, while one left out keeps its fetched records for a later
        ``getmany`` and is not fetched again until they are taken (measured: 10-27 MB/s received by a worker
        scoring 9,000 events/s of ~250 bytes, 4-6 fetched results dropped a second)."""
        if self.merger is None or not self.ahead or not isinstance(consumer, AIOKafkaConsumer):
            return None
        return tuple(tp for tp in consumer.assignment() if tp not in self.ahead)

    def _in_time_order(
        self,
        consumer: AIOKafkaConsumer,
        fetched: dict[TopicPartition, list[ConsumerRecord]],
        assigned: set[TopicPartition],
        asked: tuple[TopicPartition, ...] | None = None,
    ) -> list[tuple[TopicPartition, ConsumerRecord]]:
        """Buffer the fetch (``asked``: the partitions it took records of, None for every one); the next batch in
        timestamp order; leave partitions far ahead out of the next fetches (another client: pause them) and take
        the others again."""
        merger = self.merger
        assert merger is not None
        polled = assigned if asked is None else assigned.intersection(asked)
        merger.add({tp: rs for tp, rs in fetched.items() if tp in assigned}, polled)
        taken = merger.take(assigned, self.max_records, self._caught_up(consumer, assigned))
        full = {tp for tp in assigned if merger.full(tp)}
        if not isinstance(consumer, AIOKafkaConsumer):  # left out of getmany by _asked otherwise
            if full - self.ahead:
                consumer.pause(*(full - self.ahead))
            if (self.ahead - full) & assigned and not self.held_back:
                consumer.resume(*((self.ahead - full) & assigned))
        self.ahead = full
        return taken

    def fetched_ends(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The high watermark of each of ``partitions`` this source is assigned, as of its consumer's last fetch
        response (a partition not assigned, or not fetched yet, is left out). Asks the broker nothing: every fetch
        response carries it. Each is at least the end the records handed over so far were fetched with."""
        consumer, assigned = self.consumer, self.assigned
        if consumer is None or not assigned:
            return {}
        ends = {}
        for tp in partitions:
            if tp in assigned and tp in consumer.assignment():
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    ends[tp] = highwater
        return ends

    def _caught_up(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> set[TopicPartition]:
        """The partitions of ``assigned`` fetched up to the high watermark of their last fetch: nothing more on the
        broker (never waits on the broker here). Not waited for once their buffers run dry during the take either:
        a partition whose last buffered record was taken would otherwise hold the others' later records back for a
        whole fetch."""
        assert self.merger is not None
        caught_up = set()
        for tp in assigned:
            highwater, fetched_to = consumer.highwater(tp), self.merger.next_offset.get(tp)
            if None not in (highwater, fetched_to) and fetched_to >= highwater:
                caught_up.add(tp)
        return caught_up

    def _merge_ready(self, consumer: AIOKafkaConsumer) -> bool:
        """With ``ordered``: the merge could hand records over without another fetch (every assigned partition that
        may hold older records has some buffered). The next ``getmany`` then does not wait for records: measured
        in ``bench peers``, 13 of 29 polls of the backlog waited their whole ``timeout_ms`` for partitions with
        nothing fetched yet while the merge held a batch of the others (a quarter of the scorer's time)."""
        if self.merger is None or not self.merger.buffered:
            return False
        assigned = consumer.assignment()
        return self.merger.ready(assigned, self._caught_up(consumer, assigned))

    def _rewind(
        self, consumer: AIOKafkaConsumer, first: dict[TopicPartition, ConsumerRecord], exc: BaseException
    ) -> None:
        """Seek the partitions of a failed batch back to its ``first`` records: it is read and handled again."""
        self.retries += 1
        log.warning("%s: batch failed, handling it again in %.1f s: %r", self.label, self.retry_pause, exc)
        for tp, record in first.items():
            consumer.seek(tp, record.offset)

    async def finish_pending(self) -> None:
        """Wait until every handled batch's output is acknowledged; their offsets are then held for a commit."""
        await self._settle(keep=0)

    async def _settle(self, keep: int) -> None:
        """Hold the offsets of the oldest handled batches whose output is acknowledged; waits for the oldest
        while more than ``keep`` batches are pending. A batch whose output failed is read again from the last
        commit, with every batch after it."""
        while self.pending:
            acked, offsets, check = self.pending[0]
            if acked is not None and not acked.done() and len(self.pending) <= keep:
                return
            self.pending.popleft()
            if acked is not None:
                try:
                    await acked
                except KafkaError as exc:  # output not acknowledged: read it all again from the last commit
                    log.error("%s: output not acknowledged, re-reading from the last commit: %r", self.label, exc)
                    await self._reread()
                    return
            if self.commit_to_kafka:
                self.held.append((offsets, check))

    async def _reread(self) -> None:
        """Forget the batches in flight (their outcomes are not awaited) and read on from the last commit."""
        for acked, _, _ in self.pending:
            if acked is not None:  # their errors are the same failure: retrieved here, not logged again
                acked.add_done_callback(lambda future: future.cancelled() or future.exception())
        self.pending.clear()
        if self.consumer is not None:
            if self.merger is not None:  # what is buffered lies after the last commit: fetched again
                self.merger.drop(list(self.merger.buffers))
            committed = await self.consumer.seek_to_committed()
            # it seeks only where an offset > 0 is committed: one with none is read from its start, where the
            # group began it
            never = [tp for tp, offset in committed.items() if not offset]
            if never:
                await self.consumer.seek_to_beginning(*never)

    async def commit_held(self, wait: bool = False) -> None:
        """Commit the held offsets of the oldest batches whose durable checks say they are stored (the others
        stay held). Runs in the background unless ``wait``; while a commit runs, a background one is left for
        later."""
        if self.committing is not None and (wait or self.committing.done()):
            running, self.committing = self.committing, None
            await running  # raises what the commit raised
        if self.committing is not None or not self.held or self.consumer is None:
            return
        offsets: dict[TopicPartition, int] = {}
        while self.held and (self.held[0][1] is None or self.held[0][1]()):
            for tp, offset in self.held.pop(0)[0].items():
                offsets[tp] = max(offset, offsets.get(tp, offset))
        if not offsets:
            return
        if wait:
            await self._commit(self.consumer, offsets)
        else:
            self.committing = asyncio.ensure_future(self._commit(self.consumer, offsets))

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        assigned = consumer.assignment()  # held offsets of partitions revoked meanwhile are dropped
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner re-reads from the last commit (at-least-once).
            log.warning("%s: commit failed after rebalance: %r", self.label, exc)

    def _export_lag(self, consumer: AIOKafkaConsumer, last: dict[TopicPartition, ConsumerRecord]) -> None:
        """The lag of each partition after its ``last`` record handled."""
        for tp, record in last.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - record.offset - 1))
