"""BatchSource on the real embedded broker: batches are handled while earlier ones wait for their acknowledgements
(up to ``max_in_flight``), and a batch's offsets are committed only once its acknowledgements and its durable check,
and those of every batch before it, say so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from driftline.contract.settings import Settings
from driftline.streams.batch_source import BatchSource, ConsumerFactory, _Rebalance
from driftline.streams.confluent_consumer import ConfluentConsumer
from driftline.streams.topics import ensure_topics

pytestmark = pytest.mark.integration

WAIT = 60.0


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _consumer(client: str, settings: Settings, group: str) -> ConsumerFactory | None:
    """The source's consumer for ``client``: aiokafka's (the default, None) or librdkafka's."""
    if client == "aiokafka":
        return None
    config = {
        "bootstrap.servers": settings.broker_url,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "partition.assignment.strategy": "roundrobin",  # as the worker's: aiokafka's members share the group
    }
    return lambda: ConfluentConsumer(config)


def _source(client: str, settings: Settings, topic: str, group: str, **options: Any) -> BatchSource:
    """A source named ``t`` reading ``topic`` in ``group`` on the embedded broker with ``client``'s consumer."""
    return BatchSource(
        name="t",
        consumer_kwargs={"bootstrap_servers": settings.broker_url},
        new_consumer=_consumer(client, settings, group),
        topics=[topic],
        group_id=group,
        **options,
    )


#: Each test on the real broker runs with both clients the scorer's source can use.
clients = pytest.mark.parametrize("client", ["aiokafka", "confluent"])


async def _publish(settings: Settings, topic: str, n: int) -> None:
    """``n`` records keyed 0..n-1 on ``topic``, spread over its partitions by key."""
    await ensure_topics(settings, settings.broker_url, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=5)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, b"{}", key=str(i).encode()) for i in range(n)])
    finally:
        await producer.stop()


def _total(handled: list[dict[TopicPartition, int]]) -> int:
    """Records handled, from the batches' next offsets (every partition starts at 0)."""
    last: dict[TopicPartition, int] = {}
    for offsets in handled:
        last.update(offsets)
    return sum(last.values())


@clients
def test_offsets_wait_for_the_acknowledgements_and_the_durable_checks_of_every_batch_before(
    settings: Settings, client: str
):
    topic = settings.topic("events")
    group = f"{settings.topic_prefix}batches"

    async def scenario() -> None:
        await ensure_topics(settings, settings.broker_url, [topic])
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=5)
        await producer.start()
        try:
            sent = [await producer.send(topic, b"{}", key=str(i).encode()) for i in range(600)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        loop = asyncio.get_running_loop()
        handled: list[dict[TopicPartition, int]] = []  # each batch's next offsets
        acks: list[asyncio.Future] = []
        stored = {"batches": 0}  # how many of the first batches the "store" holds
        later = {"acknowledged": False}  # once the checks are done, batches are acknowledged as they are handled

        async def handler(records: list) -> asyncio.Future:
            offsets: dict[TopicPartition, int] = {}
            for r in records:
                offsets[TopicPartition(r.topic, r.partition)] = r.offset + 1
            handled.append(offsets)
            acks.append(loop.create_future())
            if later["acknowledged"]:
                acks[-1].set_result(None)
            return acks[-1]

        def durable() -> Callable[[], bool]:
            batch = len(handled)
            return lambda: stored["batches"] >= batch

        source = _source(
            client,
            settings,
            topic,
            group,
            handler=handler,
            durable=durable,
            max_records=50,
            timeout_ms=5_000,  # a poll returns as soon as records are there: no idle poll mid-test
            max_in_flight=2,
        )
        reader = AIOKafkaConsumer(bootstrap_servers=settings.broker_url, group_id=group, enable_auto_commit=False)
        await reader.start()
        await source.start()

        async def committed() -> dict[TopicPartition, int]:
            out = {}
            for p in range(settings.partitions):
                tp = TopicPartition(topic, p)
                offset = await reader.committed(tp)
                if offset is not None:
                    out[tp] = offset
            return out

        try:
            await _until(lambda: len(handled) == 3, "three batches handled with none acknowledged")
            assert len(handled) == 3, "with 2 batches waiting, the source waits for the oldest's acknowledgements"
            acks[0].set_result(None)  # acknowledged, but not stored yet
            await _until(lambda: len(handled) == 4, "the fourth batch")
            assert await committed() == {}, "acknowledged but not durable: nothing committed"
            stored["batches"] = 1
            acks[1].set_result(None)  # batch 2 acknowledged, not stored: only batch 1 may be committed
            await _until(lambda: len(handled) == 5, "the fifth batch")
            deadline = time.monotonic() + WAIT
            while (got := await committed()) != handled[0]:
                assert all(got.get(tp, 0) <= offset for tp, offset in handled[0].items()), got
                assert time.monotonic() < deadline, f"batch 1 not committed: {got} vs {handled[0]}"
                await asyncio.sleep(0.05)
        finally:
            stored["batches"], later["acknowledged"] = 10**9, True
            for ack in acks:
                if not ack.done():
                    ack.set_result(None)
            await _until(lambda: _total(handled) == 600, "every record handled")
            await source.stop()  # finishes what is in flight: everything handled is committed
            final = await committed()
            await reader.stop()
        last: dict[TopicPartition, int] = {}
        for offsets in handled:
            last.update(offsets)
        assert final == last, "at stop, everything handled is committed"

    asyncio.run(scenario())


@clients
def test_an_idle_poll_with_on_idle_does_not_wait_for_what_the_flush_is_still_writing(settings: Settings, client: str):
    """The scorer's join writes while Redis hangs or fails over: a flush that does not return. With ``on_idle``,
    idle polls only call it, so records that arrive after an idle poll are handled while that write still hangs;
    the offsets of the batches whose writes are not durable stay uncommitted, and a stop still awaits the flush."""
    topic = settings.topic("events")
    group = f"{settings.topic_prefix}idle"

    async def scenario() -> None:
        await ensure_topics(settings, settings.broker_url, [topic])
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=0)
        await producer.start()
        released = asyncio.Event()  # the write that hangs: set only at the end
        handled: list[int] = []
        calls = {"idle": 0, "flush": 0}

        async def handler(records: list) -> None:
            handled.extend(int(r.value) for r in records)

        async def flush() -> None:  # nothing to write before the first record (the group's first join calls it)
            if handled:
                calls["flush"] += 1
                await released.wait()

        def idle() -> None:
            calls["idle"] += 1

        source = _source(
            client,
            settings,
            topic,
            group,
            handler=handler,
            on_flush=flush,
            on_idle=idle,
            durable=lambda: released.is_set,
            max_records=50,
            timeout_ms=20,
        )
        await source.start()
        try:
            for i in range(5):  # one at a time, each after idle polls: each would wait for the hung flush
                await (await producer.send(topic, str(i).encode(), key=b"k"))
                await _until(lambda i=i: i in handled, f"record {i} handled while the flush hangs")
                polls = calls["idle"] + calls["flush"]
                await _until(lambda n=polls: calls["idle"] + calls["flush"] > n, "an idle poll")
            assert calls["flush"] == 0, "idle polls did not wait for the flush"
            assert not source.held or all(not check() for _, check in source.held if check is not None)
        finally:
            released.set()
            await source.stop()  # a stop awaits the flush, then commits what is durable
            await producer.stop()
        assert calls["flush"] >= 1 and handled == [0, 1, 2, 3, 4]

    asyncio.run(scenario())


@clients
def test_an_idle_poll_with_on_idle_does_not_wait_for_the_acknowledgements_of_the_batches_before(
    settings: Settings, client: str
):
    """The scorer at a low rate: a poll that comes back empty while a batch's output is not acknowledged yet polls
    again (the acknowledgement and the commit go on in the background), so a record published meanwhile is handled
    before that acknowledgement; its offsets, and those of the batch after it, still wait for it."""
    topic = settings.topic("events")
    group = f"{settings.topic_prefix}idleacks"

    async def scenario() -> None:
        await ensure_topics(settings, settings.broker_url, [topic])
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=0)
        await producer.start()
        loop = asyncio.get_running_loop()
        first_acked = loop.create_future()  # the first batch's output: acknowledged only at the end
        handled: list[int] = []
        calls = {"idle": 0}

        async def handler(records: list) -> asyncio.Future:
            handled.extend(int(r.value) for r in records)
            if len(handled) == len(records):  # the first batch
                return first_acked
            done = loop.create_future()
            done.set_result(None)
            return done

        def idle() -> None:
            calls["idle"] += 1

        source = _source(client, settings, topic, group, handler=handler, on_idle=idle, max_records=50, timeout_ms=20)
        reader = AIOKafkaConsumer(bootstrap_servers=settings.broker_url, group_id=group, enable_auto_commit=False)
        await reader.start()
        await source.start()
        tp = TopicPartition(topic, 0)
        try:
            first = await (await producer.send(topic, b"0", key=b"k", partition=0))
            await _until(lambda: handled == [0], "record 0 handled")
            polls = calls["idle"]
            await _until(lambda: calls["idle"] > polls, "an idle poll while record 0's output is not acknowledged")
            await (await producer.send(topic, b"1", key=b"k", partition=0))
            await _until(lambda: handled == [0, 1], "record 1 handled before record 0's acknowledgement")
            assert not first_acked.done()
            assert (await reader.committed(tp) or 0) <= first.offset, "offsets committed before the acknowledgement"
            first_acked.set_result(None)
            deadline = time.monotonic() + WAIT
            while (await reader.committed(tp) or 0) != first.offset + 2:  # committed by a later idle poll
                assert time.monotonic() < deadline, "records 0 and 1 not committed after the acknowledgement"
                await asyncio.sleep(0.05)
        finally:
            if not first_acked.done():
                first_acked.set_result(None)
            await source.stop()
            await reader.stop()
            await producer.stop()

    asyncio.run(scenario())


@clients
def test_with_flush_every_what_was_deferred_is_flushed_when_no_idle_poll_comes(settings: Settings, client: str):
    """The learner defers a checkpoint after a batch and writes it on the next idle poll; with ``flush_every`` it
    is written even when that poll never comes (here: a fetch that never returns after the first batch)."""
    topic = settings.topic("events")
    group = f"{settings.topic_prefix}deferred"

    async def scenario() -> None:
        await ensure_topics(settings, settings.broker_url, [topic])
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=0)
        await producer.start()
        await asyncio.gather(*[await producer.send(topic, str(i).encode(), key=b"k") for i in range(10)])
        await producer.stop()
        deferred: list[int] = []
        flushed: list[list[int]] = []
        never = asyncio.Event()

        async def hung_fetch(**_: object) -> dict:
            await never.wait()
            return {}

        async def handler(records: list) -> None:
            deferred.extend(int(r.value) for r in records)
            source.consumer.getmany = hung_fetch  # type: ignore[union-attr,method-assign] # no poll comes again

        async def flush() -> None:
            if deferred:
                flushed.append(list(deferred))

        source = _source(
            client,
            settings,
            topic,
            group,
            handler=handler,
            on_flush=flush,
            flush_every=0.2,
            max_records=50,
            timeout_ms=20,
        )
        await source.start()
        try:
            await _until(lambda: bool(flushed), "the deferred work flushed without an idle poll")
            assert flushed[0] == list(range(10))
        finally:
            never.set()
            await source.stop()

    asyncio.run(scenario())


def test_an_assignment_hook_waits_for_the_batch_in_flight_and_no_batch_runs_during_it() -> None:
    """aiokafka calls the rebalance listener from its coordinator's task, beside the consume loop. The learner's
    hook reloads its checkpoints and seeks to them: run in the middle of a batch, the batch went on learning into
    the replaced state, and its labels were counted as learned but reached no checkpoint (the broker-restart test's
    stall: 3,000 learned by the metrics, 2,500 in the checkpoint, the consumer idle past them)."""
    events: list[str] = []

    async def on_assigned(_consumer: object, assigned: set[TopicPartition]) -> None:
        events.append("assigned: start")
        await asyncio.sleep(0)  # the hook awaits (Redis, the registry): a batch must not slip in here
        events.append("assigned: end")

    async def scenario() -> None:
        source = BatchSource(
            name="t", consumer_kwargs={}, topics=["t"], group_id="g", handler=lambda _: None, on_assigned=on_assigned
        )
        listener = _Rebalance(source)

        async def batch(name: str) -> None:
            async with source.in_flight:  # what the consume loop holds while it handles a batch
                events.append(f"{name}: start")
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                events.append(f"{name}: end")

        first = asyncio.ensure_future(batch("batch 1"))
        await asyncio.sleep(0)  # batch 1 is in flight
        assignment = asyncio.ensure_future(listener.on_partitions_assigned({TopicPartition("t", 0)}))
        await asyncio.sleep(0)  # the assignment waits for it
        second = asyncio.ensure_future(batch("batch 2"))  # queued behind the assignment
        await asyncio.gather(first, assignment, second)

    asyncio.run(scenario())
    assert events == [
        "batch 1: start",
        "batch 1: end",
        "assigned: start",
        "assigned: end",
        "batch 2: start",
        "batch 2: end",
    ]


@clients
def test_a_revoke_finishes_and_commits_the_batches_in_flight_before_another_member_gets_their_partitions(
    settings: Settings, client: str, monkeypatch: pytest.MonkeyPatch
):
    """A second member joins while every batch handled waits for its acknowledgements. The partitions move only
    once the revoke let those batches finish and committed them: the new owner starts where the first stopped
    (librdkafka calls the revoke inside ``poll`` on its thread; the listener runs on the loop and is waited for)."""
    topic = settings.topic("events")
    group = f"{settings.topic_prefix}moving"
    revoking = asyncio.Event()
    revoked = _Rebalance.on_partitions_revoked

    async def on_revoked(self: _Rebalance, partitions: set[TopicPartition]) -> None:
        if partitions:
            revoking.set()
        await revoked(self, partitions)

    monkeypatch.setattr(_Rebalance, "on_partitions_revoked", on_revoked)

    async def scenario() -> None:
        await _publish(settings, topic, 200)
        loop = asyncio.get_running_loop()
        handled: list[dict[TopicPartition, int]] = []
        acks: list[asyncio.Future] = []

        async def handler(records: list) -> asyncio.Future:
            handled.append({TopicPartition(r.topic, r.partition): r.offset + 1 for r in records})
            acks.append(loop.create_future())
            return acks[-1]

        source = _source(
            client,
            settings,
            topic,
            group,
            handler=handler,
            max_records=50,
            max_in_flight=10,
            timeout_ms=int(WAIT * 1000),  # no idle poll (it would wait for the acknowledgements before polling again)
        )
        reader = AIOKafkaConsumer(bootstrap_servers=settings.broker_url, group_id=group, enable_auto_commit=False)
        committed_when_moved: dict[TopicPartition, int | None] = {}

        class Recorder(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: object) -> None:
                pass

            async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
                for tp in assigned:
                    committed_when_moved[tp] = await reader.committed(tp)

        other = AIOKafkaConsumer(
            bootstrap_servers=settings.broker_url,
            group_id=group,
            enable_auto_commit=False,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            rebalance_timeout_ms=settings.rebalance_timeout_ms,
        )
        await reader.start()
        await source.start()
        try:
            await _until(lambda: _total(handled) == 200, "every record handled, none acknowledged")
            await other.start()
            other.subscribe([topic], listener=Recorder())
            await asyncio.wait_for(revoking.wait(), WAIT)
            assert not committed_when_moved, "the partitions moved before the batches in flight were acknowledged"
            for ack in acks:
                ack.set_result(None)
            await _until(lambda: bool(committed_when_moved), "the second member's assignment")
            last: dict[TopicPartition, int] = {}
            for offsets in handled:
                last.update(offsets)
            assert committed_when_moved == {tp: last[tp] for tp in committed_when_moved}
        finally:
            for ack in acks:
                if not ack.done():
                    ack.set_result(None)
            await source.stop()
            await other.stop()
            await reader.stop()

    asyncio.run(scenario())


@clients
def test_a_batch_whose_handler_fails_with_a_retriable_error_is_read_again_from_its_first_offsets(
    settings: Settings, client: str
):
    """``retry_on``: the failed batch's partitions are sought back to its first records (librdkafka's ``seek`` on
    partitions it is fetching), so every record is handled once after the failure, in offset order."""
    topic = settings.topic("events")
    group = f"{settings.topic_prefix}retry"

    async def scenario() -> None:
        await _publish(settings, topic, 300)
        handled: dict[int, list[int]] = {}
        failures = {"left": 2}

        async def handler(records: list) -> None:
            if failures["left"]:
                failures["left"] -= 1
                raise ConnectionError("the store is unreachable")
            for r in records:
                handled.setdefault(r.partition, []).append(r.offset)

        source = _source(
            client,
            settings,
            topic,
            group,
            handler=handler,
            retry_on=(ConnectionError,),
            retry_pause=0.05,
            max_records=40,
            timeout_ms=int(WAIT * 1000),
        )
        await source.start()
        try:
            await _until(lambda: sum(map(len, handled.values())) >= 300, "every record handled")
        finally:
            await source.stop()
        assert source.retries == 2
        assert all(offsets == list(range(len(offsets))) for offsets in handled.values()), "none lost or repeated"
        assert sum(map(len, handled.values())) == 300

    asyncio.run(scenario())


@clients
def test_a_batch_whose_output_is_not_acknowledged_before_any_commit_is_read_again_from_the_start(
    settings: Settings, client: str
):
    """The first batch's output fails (KafkaError) before any offset of its partitions was committed: the source
    reads on from the last commit, here the partitions' start (aiokafka's ``seek_to_committed`` seeks only where an
    offset > 0 is committed: those records were skipped), so every record's output is acknowledged."""
    topic = settings.topic("events")
    group = f"{settings.topic_prefix}unacked"

    async def scenario() -> None:
        await _publish(settings, topic, 300)
        acknowledged: set[tuple[int, int]] = set()
        failures = {"left": 1}

        async def handler(records: list) -> asyncio.Future:
            acked = asyncio.get_running_loop().create_future()
            if failures["left"]:
                failures["left"] -= 1
                acked.set_exception(KafkaError("the predictions' send failed"))
            else:
                acknowledged.update((r.partition, r.offset) for r in records)
                acked.set_result(None)
            return acked

        source = _source(
            client,
            settings,
            topic,
            group,
            handler=handler,
            max_records=40,
            timeout_ms=200,
        )
        await source.start()
        try:
            await _until(lambda: len(acknowledged) >= 300, "every record's output acknowledged")
        finally:
            await source.stop()
        assert failures["left"] == 0 and len(acknowledged) == 300

    asyncio.run(scenario())
