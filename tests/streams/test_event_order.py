"""Timestamp-synchronised consumption: the pure merger, and the scorer's source on the real broker."""

from __future__ import annotations

import asyncio
import random
from collections import namedtuple

import orjson
from aiokafka import AIOKafkaProducer
from hypothesis import given
from hypothesis import strategies as st

from driftline.contract.settings import Settings
from driftline.streams.batch_source import BatchSource
from driftline.streams.event_order import EventTimeMerger, decoded_value, event_time, event_times
from driftline.streams.topics import ensure_topics

R = namedtuple("R", "timestamp offset")


async def _run_until(source: BatchSource, done: asyncio.Event) -> None:
    """Run ``source`` until ``done`` is set (at most 60 s), then stop it."""
    await source.start()
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await source.stop()


@given(st.lists(st.lists(st.integers(0, 1000), max_size=30), min_size=1, max_size=5), st.integers(1, 7))
def test_merged_records_come_in_timestamp_order_each_once_whatever_the_fetches(
    partitions: list[list[int]], chunk: int
) -> None:
    streams = {p: [R(t, o) for o, t in enumerate(sorted(ts))] for p, ts in enumerate(partitions)}
    merger, out = EventTimeMerger(max_buffered=10), []
    cursor = dict.fromkeys(streams, 0)
    rng = random.Random(len(partitions) * 31 + chunk)
    while any(cursor[p] < len(s) for p, s in streams.items()):
        fetched = {}
        for p, s in streams.items():  # each fetch brings a few records of some partitions
            if rng.random() < 0.6 and not merger.full(p):
                fetched[p] = s[cursor[p] : cursor[p] + chunk]
                cursor[p] += len(fetched[p])
        merger.add(fetched)
        caught_up = {p for p, s in streams.items() if cursor[p] == len(s)}
        ready = merger.ready(streams, caught_up)
        taken = merger.take(streams, chunk, caught_up)
        assert ready == bool(taken)  # ready says whether take hands something over
        if taken and rng.random() < 0.2:  # a failed batch is handled again
            merger.requeue(taken)
            taken = merger.take(streams, chunk, caught_up)
        out += taken
    out += merger.take(streams, 10_000, set(streams))
    assert [r.timestamp for _, r in out] == sorted(t for ts in partitions for t in ts)
    assert sorted((p, r.offset) for p, r in out) == sorted((p, r.offset) for p, s in streams.items() for r in s)


def test_the_scorers_source_hands_a_four_partition_backlog_over_in_time_order(settings: Settings) -> None:
    """4,000 records spread over 4 partitions by key, timestamps in publishing order: the ordered source hands them
    over sorted by timestamp, each exactly once; the plain source (control) hands over runs of one partition."""
    count = 4000

    async def scenario() -> tuple[list[int], list[int]]:
        await ensure_topics(settings, settings.broker_url)
        topic = settings.topic("events")
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=5)
        await producer.start()
        try:
            keys = [str(random.Random(i).random()).encode() for i in range(count)]
            futures = [await producer.send(topic, b"{}", key=k, timestamp_ms=1_000 + i) for i, k in enumerate(keys)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return await consume(True), await consume(False)

    async def consume(ordered: bool) -> list[int]:
        seen: list[int] = []
        enough = asyncio.Event()

        async def handler(records: list) -> None:
            seen.extend(r.timestamp for r in records)
            if len(seen) >= count:
                enough.set()

        source = BatchSource(
            name="score",
            consumer_kwargs={"bootstrap_servers": settings.broker_url, "fetch_max_wait_ms": 50},
            topics=[settings.topic("events")],
            group_id=f"{settings.topic_prefix}{'ordered' if ordered else 'plain'}",
            handler=handler,
            max_records=100,
            ordered=ordered,
        )
        await _run_until(source, enough)
        return seen

    ordered, plain = asyncio.run(scenario())
    assert ordered == list(range(1_000, 1_000 + count))
    assert sorted(plain) == ordered and plain != ordered


def test_a_partition_far_ahead_is_left_out_of_the_fetches_not_paused(settings: Settings) -> None:
    """Partition 0's 1,500 records are all later in time than partitions 1-3's 500 each: its buffer fills up while
    the others are handed over first, so it is far ahead. It is left out of ``getmany`` instead of paused (aiokafka
    drops what it fetched of a paused partition and fetches it again once resumed): the consumer never has a
    paused partition, and everything is handed over once, in time order."""
    ahead = 1500

    async def scenario() -> tuple[list[int], set, int]:
        await ensure_topics(settings, settings.broker_url)
        topic = settings.topic("events")
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(topic, b"{}", partition=0, timestamp_ms=100_000 + i) for i in range(ahead)]
            futures += [
                await producer.send(topic, b"{}", partition=p, timestamp_ms=1_000 + 3 * i + p - 1)
                for i in range(500)
                for p in (1, 2, 3)
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        seen: list[int] = []
        paused: set = set()
        most_ahead = 0
        enough = asyncio.Event()

        async def handler(records: list) -> None:
            nonlocal most_ahead
            seen.extend(r.timestamp for r in records)
            paused.update(source.consumer.paused())
            most_ahead = max(most_ahead, len(source.ahead))
            if len(seen) >= ahead + 1500:
                enough.set()

        source = BatchSource(
            name="score",
            consumer_kwargs={"bootstrap_servers": settings.broker_url, "fetch_max_wait_ms": 50},
            topics=[topic],
            group_id=f"{settings.topic_prefix}far-ahead",
            handler=handler,
            max_records=100,
            ordered=True,
        )
        await _run_until(source, enough)
        return seen, paused, most_ahead

    assert settings.partitions == 4
    seen, paused, most_ahead = asyncio.run(scenario())
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == ahead + 1500
    assert most_ahead >= 1  # partition 0 was far ahead while the others were handed over
    assert paused == set()


def test_a_fetch_never_waits_for_records_while_the_merge_holds_some_of_every_partition(settings: Settings) -> None:
    """1,000 records in each of 4 partitions, timestamps interleaved; batches of 100 while a fetch brings far more:
    between batches the merge often holds records of every partition, and the next batch needs no fetch. The fetch
    then takes what the client has at once (``timeout_ms=0``) instead of waiting up to ``timeout_ms`` for more
    (measured in ``bench peers``: 13 of 29 polls of the backlog waited the whole 50 ms); everything is still handed
    over once, in time order."""
    per_partition = 1000

    async def scenario() -> tuple[list[int], list[tuple[bool, int]]]:
        await ensure_topics(settings, settings.broker_url)
        topic = settings.topic("events")
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=5)
        await producer.start()
        try:
            futures = [
                await producer.send(topic, b"{}", partition=p, timestamp_ms=1_000 + 4 * i + p)
                for i in range(per_partition)
                for p in range(4)
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        seen: list[int] = []
        polls: list[tuple[bool, int]] = []  # (every assigned partition had records buffered, timeout_ms)
        enough = asyncio.Event()

        async def handler(records: list) -> None:
            seen.extend(r.timestamp for r in records)
            if len(seen) >= 4 * per_partition:
                enough.set()

        source = BatchSource(
            name="score",
            consumer_kwargs={"bootstrap_servers": settings.broker_url, "fetch_max_wait_ms": 50},
            topics=[topic],
            group_id=f"{settings.topic_prefix}no-wait",
            handler=handler,
            max_records=100,
            timeout_ms=500,
            ordered=True,
        )
        await source.start()
        getmany = source.consumer.getmany

        async def spied(*partitions: object, timeout_ms: int, max_records: int) -> dict:
            assigned = source.consumer.assignment()
            held = bool(assigned) and all(source.merger.buffers.get(tp) for tp in assigned)
            polls.append((held, timeout_ms))
            return await getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)

        source.consumer.getmany = spied
        try:
            await asyncio.wait_for(enough.wait(), 60)
        finally:
            await source.stop()
        return seen, polls

    assert settings.partitions == 4
    seen, polls = asyncio.run(scenario())
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 4 * per_partition
    assert any(held for held, _ in polls)  # the merge held a batch before some fetches
    assert all(timeout == 0 for held, timeout in polls if held)


def test_a_partition_caught_up_with_its_end_never_holds_the_others_back(settings: Settings) -> None:
    """Partition 0 holds ts 1 and 3, partition 1 ts 2, partitions 2 and 3 ts 4 and 5, all on the broker before the
    source starts: the first batch handed over is all five in time order. Once partition 1's only record is taken it
    has nothing buffered, but nothing more on the broker either (fetched up to its high watermark): the others are
    not held back for another fetch (they were, before: the first batch stopped at ts 2)."""

    async def scenario() -> list[list[int]]:
        await ensure_topics(settings, settings.broker_url)
        topic = settings.topic("events")
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url)
        await producer.start()
        try:
            for partition, ts in ((0, 1), (1, 2), (0, 3), (2, 4), (3, 5)):
                await producer.send_and_wait(topic, orjson.dumps({"ts": ts}), partition=partition)
        finally:
            await producer.stop()
        batches: list[list[int]] = []
        enough = asyncio.Event()

        async def handler(records: list) -> None:
            batches.append([event_time(r) for r in records])
            if sum(map(len, batches)) >= 5:
                enough.set()

        source = BatchSource(
            name="score",
            consumer_kwargs={"bootstrap_servers": settings.broker_url, "fetch_max_wait_ms": 50},
            topics=[topic],
            group_id=f"{settings.topic_prefix}caught-up",
            handler=handler,
            ordered=True,
            order_by=event_time,
        )
        await _run_until(source, enough)
        return batches

    assert settings.partitions == 4
    assert asyncio.run(scenario()) == [[1, 2, 3, 4, 5]]


def test_the_scorers_order_is_the_events_ts_not_the_producers_clock() -> None:
    """Kafka timestamps that disagree with the events' ts (a producer's skewed clock, a re-publish): the merger
    with ``event_time`` hands the records over by ts, ISO-8601 or epoch ms; hostile values keep their Kafka
    timestamp and are never lost."""
    Rv = namedtuple("Rv", "timestamp offset value")
    p0 = [
        Rv(900, 0, b'{"event_id": "a", "ts": 10}'),
        Rv(901, 1, b'{"event_id": "c", "ts": "1970-01-01T00:00:00.030Z"}'),
    ]
    p1 = [Rv(100, 0, b'{"event_id": "b", "ts": 20}'), Rv(101, 1, b'{"event_id": "d", "ts": 40}')]
    p2 = [Rv(35, 0, b"not json"), Rv(50, 1, b'{"event_id": "e", "ts": true}')]
    by_kafka, by_event = EventTimeMerger(), EventTimeMerger(time_of=event_time)
    for merger in (by_kafka, by_event):
        merger.add({"p0": p0, "p1": p1, "p2": p2})
    assert [r.value[:20] for _, r in by_kafka.take({"p0", "p1", "p2"}, 10, {"p0", "p1", "p2"})][0] == b"not json"
    taken = by_event.take({"p0", "p1", "p2"}, 10, {"p0", "p1", "p2"})
    assert [event_time(r) for _, r in taken] == [10, 20, 30, 35, 40, 50]
    taken_back = taken[:3]
    by_event.requeue(taken_back)
    assert [event_time(r) for _, r in by_event.take({"p0", "p1", "p2"}, 10, {"p0", "p1", "p2"})] == [10, 20, 30]


def test_the_scorer_decodes_each_message_once_the_merge_by_ts_decodes_it(monkeypatch):
    """event_time keeps the value it decoded on the record; the stage reads it instead of decoding again."""
    from aiokafka import ConsumerRecord

    from driftline.contract.settings import Settings
    from driftline.streams import scoring_stage
    from driftline.streams.scoring_stage import ScoringPolicy, model_names

    value = b'{"event_id": "e1", "ts": 7, "features": {"x": 1.5}, "model": "m"}'
    record = ConsumerRecord("events", 0, 3, 1, 0, None, value, None, 0, len(value), ())
    assert event_time(record) == 7
    decodes = []
    real = scoring_stage.decode_events
    monkeypatch.setattr(
        scoring_stage,
        "decode_events",
        lambda raws, *args: decodes.append(args[-1]) or real(raws, *args),
    )
    names, batch = model_names([record], ScoringPolicy.from_settings(Settings()), now_ms=7)
    assert decodes == [[{"event_id": "e1", "ts": 7, "features": {"x": 1.5}, "model": "m"}]]
    assert names == {"m"} and batch.features == [{"x": 1.5}]


TS_VALUES = st.one_of(
    st.integers(-5, 2**70),
    st.just(253_402_300_799_999),
    st.just(253_402_300_800_000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.sampled_from(["2023-11-14T22:13:20Z", "2023-11-14T22:13:20", "yesterday"]),
)


@given(
    st.lists(
        st.one_of(
            TS_VALUES.map(
                lambda ts: b'{"ts": %d}' % ts if type(ts) is int else orjson.dumps({"event_id": "e", "ts": ts})
            ),
            st.sampled_from([b"not json", b"[1, 2]", b'"ts"', b"{}", b'{"ts": 1e400}', b"12"]),
            st.integers(0, 2**40).map(lambda ts: orjson.dumps({"ts": ts, "features": {"x": ts / 7}})),
        ),
        max_size=20,
    )
)
def test_the_times_of_a_fetch_at_once_are_event_time_of_each_record_with_the_same_decoded_values(
    values: list[bytes],
) -> None:
    """The scorer's merge reads a fetch's times in one pass: the same times, and the same decoded value kept on
    each record, as event_time record by record, whatever the values (hostile ones send it record by record)."""
    from aiokafka import ConsumerRecord

    def records() -> list[ConsumerRecord]:
        return [ConsumerRecord("events", 0, i, 1000 + i, 0, None, v, None, 0, len(v), ()) for i, v in enumerate(values)]

    one_by_one, at_once = records(), records()
    assert event_times(at_once) == [event_time(r) for r in one_by_one]
    assert [decoded_value(r) for r in at_once] == [decoded_value(r) for r in one_by_one]
    merger = EventTimeMerger(time_of=event_time, times_of=event_times)
    merger.add({"p": records()})
    assert [t for t, _ in merger.buffers.get("p", [])] == [event_time(r) for r in records()]
