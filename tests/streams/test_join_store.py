"""Join writes against a real, frozen redis-server (SIGSTOP by pid): the scorer must not wait on a hung Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from driftline.contract import keys
from driftline.contract.settings import Settings
from driftline.embedded.stack import REDIS_USER, EmbeddedServer, free_port, start_redis
from driftline.models.feature_columns import FeatureColumns
from driftline.streams.join_codec import encode_record, layout_digest
from driftline.streams.join_store import DEFAULT_BUCKETS, JoinSlices, JoinStore, find_join
from driftline.streams.learning_stage import JoinRecord
from tests.harness import WorkerProcess, busy_cores, event, prediction_ids, probe, publish, read_until
from tests.streams.test_faults import metric

PASSWORD = "join-store-test"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = start_redis(tmp_path, PASSWORD, key_prefix="t", extra_commands=("keys",))
    try:
        yield server
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.stop()
    assert server.proc.poll() is not None, f"redis-server (pid {server.pid}) still running"


def _failed_writes() -> float:
    return REGISTRY.get_sample_value("driftline_redis_errors_total", {"op": "join_write"}) or 0.0


def _records(start: int, count: int) -> list[tuple[str, JoinRecord]]:
    return [(f"e{i}", JoinRecord({"x": float(i)}, True, None, None, 1, 10**13)) for i in range(start, start + count)]


def waiting(client: redis.Redis, prefix: str, ttl: int, event_id: str, at: int) -> bool:
    return find_join(client, prefix, ttl, "default", event_id, at) is not None


def test_while_redis_hangs_batches_only_buffer_and_reach_redis_once_it_answers(own_redis):
    async def scenario() -> dict[str, int]:
        # no retries: redis-py's default retries a timed-out call with backoff, which only makes the test longer
        client = aioredis.Redis(
            host="127.0.0.1",
            port=own_redis.port,
            username=REDIS_USER,
            password=PASSWORD,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 0),
        )
        store = JoinStore(client, "t:", ttl_seconds=60, retry_seconds=3600)
        await store.put_many("m", _records(0, 10))
        assert store.buffered == 0
        os.kill(own_redis.pid, signal.SIGSTOP)
        first = asyncio.create_task(store.put_many("m", _records(10, 10)))  # waits for the socket timeout
        await asyncio.sleep(0)
        for batch in range(2, 20):  # a write is in flight: these only buffer, they do not queue behind it
            await store.put_many("m", _records(batch * 10, 10))
        assert not first.done(), "the batches did not wait for the hung write"
        await first
        after_failure, failures = store.buffered, _failed_writes()
        await store.put_many("m", _records(200, 10))  # within retry_seconds of the failure: not tried
        assert _failed_writes() == failures
        os.kill(own_redis.pid, signal.SIGCONT)
        left = await store.flush()  # what the worker's timer does
        ids = [f"e{i}" for i in range(210)]
        stored = sum(r is not None for r in await store.get_many("m", ids, [10**13 - 60_000] * len(ids)))
        await client.aclose()
        return {"after_failure": after_failure, "left": left, "stored": stored}

    result = asyncio.run(scenario())
    assert result["after_failure"] == 190, "the batches written while Redis hung are buffered, none dropped"
    assert result["left"] == 0
    assert result["stored"] == 210, "every buffered record reaches Redis once it answers"


def redis_failing(answer: tuple[int, dict] | None) -> bool:
    return answer is not None and answer[0] == 503 and not answer[1]["checks"]["redis"]["ok"]


@pytest.mark.integration
def test_a_full_join_buffer_pauses_scoring_drops_nothing_and_scoring_resumes_when_redis_answers(
    own_redis, tmp_path, stack
):
    """A worker whose Redis hangs with a 300-record join buffer: it pauses consumption (metric says so) instead
    of dropping records and /readyz says Redis fails; once Redis answers every event is scored once, every join
    record is stored and /readyz is 200 again."""
    settings = Settings(
        broker_url=stack.broker_url,
        redis_url=f"redis://{REDIS_USER}:{PASSWORD}@127.0.0.1:{own_redis.port}/0",
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        model_hmac_key="k",
        http_port=0,
        join_buffer_max=300,
        batch_size=100,
    )
    port = free_port()
    worker = WorkerProcess(settings, tmp_path, DRIFTLINE_METRICS_PORT=str(port)).start()
    client = redis.Redis(host="127.0.0.1", port=own_redis.port, username=REDIS_USER, password=PASSWORD)
    n = 2000
    try:
        asyncio.run(publish(settings, "events", [(b"k", event(i)) for i in range(100)]))
        asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= 100))
        with busy_cores():
            os.kill(own_redis.pid, signal.SIGSTOP)
            try:
                asyncio.run(publish(settings, "events", [(b"k", event(i)) for i in range(100, n)]))
                deadline = time.monotonic() + 120
                while metric(port, "driftline_consumption_paused") != 1:
                    assert worker.alive() and time.monotonic() < deadline, worker.log()[-3000:]
                    time.sleep(0.1)
                buffered = metric(port, "driftline_join_buffered")
                scored_while_paused = metric(port, "driftline_events_scored_total")
                while not redis_failing(probe(port, "/readyz")):  # readiness says which dependency fails
                    assert time.monotonic() < deadline, probe(port, "/readyz")
                    time.sleep(0.1)
            finally:
                os.kill(own_redis.pid, signal.SIGCONT)
            out = asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= n))
        deadline = time.monotonic() + 60
        ttl, at = settings.label_ttl_seconds, 1_700_000_000_000  # the events' time (tests.harness.event)
        while (stored := sum(waiting(client, settings.redis_prefix, ttl, f"e{i}", at) for i in range(n))) < n:
            assert time.monotonic() < deadline, f"{stored} join records stored"
            time.sleep(0.1)
        resumed = metric(port, "driftline_consumption_paused") == 0
        while probe(port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, probe(port, "/readyz")
            time.sleep(0.1)
    finally:
        worker.stop()
        client.close()
    ids = prediction_ids(out["predictions"])
    print(json.dumps({"buffered_when_paused": buffered, "scored_when_paused": scored_while_paused}), flush=True)
    assert 300 <= buffered < 300 + 100 and scored_while_paused < n, "paused at the bound, not after everything"
    assert sorted(ids) == sorted(f"e{i}" for i in range(n)), "every event scored once"
    assert stored == n and resumed, "every join record reached Redis; consumption resumed"


def _client(server: EmbeddedServer) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=server.port, username=REDIS_USER, password=PASSWORD)


def test_records_are_found_whatever_the_label_time_and_gone_once_deleted(own_redis):
    """Events over three slices of event time (an hour each); labels timestamped right after their event, or at 1
    (a producer's odd clock): each finds its record, equal to what was written, until it is deleted."""

    async def scenario() -> None:
        client = _client(own_redis)
        store = JoinStore(client, "t:", ttl_seconds=8 * 3600)  # slices of an hour
        base = 472_222 * 3_600_000  # the start of an hour
        written = [
            (
                f"e{i}",
                JoinRecord(
                    {"x": i / 7, "c": f"k{i % 3}"}, i % 2 == 0, None, i / 9, 2, base + i * 40_000 + store.slices.ttl_ms
                ),
            )
            for i in range(270)
        ]
        await store.put_many("m", written)
        assert len({store.slices.of(r.expires_ms - store.slices.ttl_ms) for _, r in written}) == 3
        ids = [e for e, _ in written] + ["ghost"]
        right_after = await store.lookup("m", ids, [base + i * 40_000 + 1 for i in range(270)] + [base])
        at_one = await store.get_many("m", ids, [1] * len(ids))
        assert [f[1] if f else None for f in right_after] == at_one == [r for _, r in written] + [None]
        reader = JoinStore(_client(own_redis), "t:", ttl_seconds=8 * 3600)  # another process: nothing cached
        assert await reader.get_many("m", ids, [base] * len(ids)) == at_one
        await store.delete([(f[0], ids[i]) for i, f in enumerate(right_after[:200]) if f is not None])
        after = await reader.get_many("m", ids, [base] * len(ids))
        assert after == [None] * 200 + [r for _, r in written[200:]] + [None]
        await client.aclose()
        await reader.client.aclose()

    asyncio.run(scenario())


def test_a_slice_gets_the_buckets_its_predecessor_needed(own_redis):
    async def scenario() -> list[int]:
        client = _client(own_redis)
        store = JoinStore(client, "t:", ttl_seconds=8 * 3600)
        hour = 3_600_000
        for k in range(3):  # 10, then 2,000, then 2,000 events an hour
            n = 10 if k == 0 else 2_000
            records = [
                (f"{k}-{i}", JoinRecord({"x": 1.0}, True, None, 0.5, 1, k * hour + i + store.slices.ttl_ms))
                for i in range(n)
            ]
            await store.put_many("n", records)
        counts = [int(await client.hget(keys.join_slice("t:", "n", k), "buckets")) for k in range(3)]  # slice k: hour k
        await client.aclose()
        return counts

    assert asyncio.run(scenario()) == [DEFAULT_BUCKETS, 1, JoinSlices.buckets_for(2_000)]


def test_puts_return_before_the_write_and_the_mark_says_when_their_records_are_stored(own_redis):
    async def put(store: JoinStore, start: int, count: int) -> None:
        ids = [f"e{i}" for i in range(start, start + count)]
        xs = [{"x": float(i)} for i in range(start, start + count)]
        await store.put_scored("m", ids, xs, [True] * count, [None] * count, [None] * count, 1, [10**13] * count)

    async def scenario() -> tuple[bool, bool, bool, int]:
        client = aioredis.Redis(host="127.0.0.1", port=own_redis.port, username=REDIS_USER, password=PASSWORD)
        store = JoinStore(client, "t:", ttl_seconds=60)
        await put(store, 0, 500)
        first = store.mark()
        await put(store, 500, 10)  # joins the write in flight
        both = store.mark()
        before = first(), both()
        await store.written()
        ids = [f"e{i}" for i in range(510)]
        stored = sum(r is not None for r in await store.get_many("m", ids, [10**13] * len(ids)))
        await client.aclose()
        return *before, first() and both(), stored

    first_before, both_before, after, stored = asyncio.run(scenario())
    assert not first_before and not both_before, "a put returns before Redis has its records"
    assert after and stored == 510, "once the write in flight ended, every record put before is stored"


def test_with_a_linger_one_write_takes_the_records_of_several_puts(own_redis):
    """The scorer at low rates: a put starts no write until the oldest record buffered waited ``linger`` (then one
    pipeline takes them all), or ``linger_records`` are buffered; :meth:`JoinStore.written` writes at once."""

    class Counted(JoinStore):
        writes = 0

        async def _write(self, pending: list) -> None:
            self.writes += 1
            await super()._write(pending)

    async def put(store: JoinStore, start: int, count: int) -> None:
        ids = [f"e{i}" for i in range(start, start + count)]
        xs = [{"x": float(i)} for i in range(start, start + count)]
        await store.put_scored("m", ids, xs, [True] * count, [None] * count, [None] * count, 1, [10**13] * count)

    async def until(condition, what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.01)

    async def scenario() -> tuple[list[int], int]:
        client = aioredis.Redis(host="127.0.0.1", port=own_redis.port, username=REDIS_USER, password=PASSWORD)
        store = Counted(client, "t:", ttl_seconds=60, linger=0.2, linger_records=100)
        writes = []
        for k in range(3):  # three batches within the linger
            await put(store, 10 * k, 10)
        three = store.mark()
        writes.append(store.writes)  # none yet
        assert not three()
        await until(three, "the linger's write")
        writes.append(store.writes)  # one for the three batches
        await put(store, 30, 100)  # as many as linger_records: written at once
        writes.append(int(store._writer is not None and not store._writer.done()))
        await store.written()
        await put(store, 130, 5)
        await store.written()  # no linger
        writes.append(store.writes)
        ids = [f"e{i}" for i in range(135)]
        stored = sum(r is not None for r in await store.get_many("m", ids, [10**13] * len(ids)))
        await client.aclose()
        return writes, stored

    writes, stored = asyncio.run(scenario())
    assert writes == [0, 1, 1, 3] and stored == 135, writes


def test_a_scored_batch_put_from_its_columns_reads_back_as_put_row_by_row(own_redis):
    """The scorer's batch (float columns, one version, no challenger) is encoded at once; its records read back
    equal to the same records put one by one, whatever the score (whole numbers are packed apart)."""
    count = 300
    matrix = np.array([[i / 7, float(i % 5), -0.0 if i % 11 == 0 else 2.5e9] for i in range(count)])
    columns = FeatureColumns(["a", "b", "c"], {n: matrix[:, j] for j, n in enumerate("abc")}, {}, list(range(count)))
    scores = [1.0 if i % 17 == 0 else i / (count + 1) for i in range(count)]
    probabilities = [{"False": 1.0 - s, "True": s} for s in scores]
    ts = [10**13 + i * 997 for i in range(count)]

    async def scenario() -> tuple[list, list]:
        client = _client(own_redis)
        batch, rows = JoinStore(client, "tb:", ttl_seconds=60), JoinStore(client, "tr:", ttl_seconds=60)
        ids = [f"e{i}" for i in range(count)]
        args = (ids, columns.rows(), [s > 0.5 for s in scores], probabilities, scores, 3, ts)
        await batch.put_scored("m", *args, None, columns)
        await rows.put_scored("m", *args)
        await batch.written()
        await rows.written()
        got = await JoinStore(client, "tb:", ttl_seconds=60).get_many("m", ids, ts), await rows.get_many("m", ids, ts)
        await client.aclose()
        return got

    from_columns, row_by_row = asyncio.run(scenario())
    assert None not in from_columns and from_columns == row_by_row
    assert [r.x for r in from_columns] == columns.rows() and [r.score for r in from_columns] == scores


def test_a_batch_put_without_its_rows_builds_them_from_its_columns_when_it_is_encoded_row_by_row(own_redis):
    """The worker passes no row dicts: a batch its columns cannot pack at once (a missing feature) is encoded
    from the dicts its columns stand for, equal to the same batch put with them."""
    count = 50
    matrix = np.array([[i / 3, np.nan if i % 4 == 0 else float(i)] for i in range(count)])
    columns = FeatureColumns(["a", "b"], {n: matrix[:, j] for j, n in enumerate("ab")}, {}, list(range(count)))
    scores = [i / (count + 1) for i in range(count)]
    ts = [10**13 + i * 991 for i in range(count)]

    async def scenario() -> tuple[list, list]:
        client = _client(own_redis)
        lazy, rows = JoinStore(client, "tl:", ttl_seconds=60), JoinStore(client, "tr:", ttl_seconds=60)
        ids = [f"e{i}" for i in range(count)]
        outputs = ([s > 0.5 for s in scores], [{"False": 1.0 - s, "True": s} for s in scores], scores, 3, ts)
        await lazy.put_scored("m", ids, None, *outputs, None, columns)
        await rows.put_scored("m", ids, columns.rows(), *outputs)
        with pytest.raises(ValueError):
            await lazy.put_scored("m", ids, None, *outputs)
        await lazy.written()
        await rows.written()
        got = await lazy.get_many("m", ids, ts), await rows.get_many("m", ids, ts)
        await client.aclose()
        return got

    from_columns, from_rows = asyncio.run(scenario())
    assert None not in from_columns and from_columns == from_rows
    assert [r.x for r in from_columns] == columns.rows() and "b" not in from_columns[0].x


def test_records_decoded_at_once_are_the_records_decoded_one_by_one() -> None:
    """JoinSlices.decoded_many (the learner's lookups) against decoded: each record, each refusal."""
    slices, names = JoinSlices(ttl_ms=8_000), ("a", "b", "c")
    layouts = {layout_digest(names): names}
    raws = [
        encode_record([1.0, 0.5, -3.25], True, {"False": 1.0 - 0.7, "True": 0.7}, 0.7, 4, 321, None, names),
        encode_record([1.0, "t", None], "x", None, None, 5, -3, [2, True, None, 0.5], names),
        encode_record([1.0, 2.0, 3.0], False, {"False": 0.6, "True": 0.4}, 0.4, 6, 7, None, ("z", "y", "x")),
        b"\x01\x02",
    ]
    many = slices.decoded_many(raws, [3, 4, 5, 6], layouts)
    for raw, k, got in zip(raws, [3, 4, 5, 6], many, strict=True):
        try:
            alone: object = slices.decoded(raw, k, layouts)
        except (KeyError, ValueError) as exc:
            alone = exc
        assert type(got) is type(alone) and (got == alone if isinstance(got, JoinRecord) else got.args == alone.args)
    assert isinstance(many[0], JoinRecord) and isinstance(many[2], KeyError) and isinstance(many[3], ValueError)


_HOUR = 3_600_000
#: (event number, slice of its event time, feature value) of a join record written.
_WRITES = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.floats(allow_nan=False)), max_size=12)
#: (event number, slice of the label's time) of a label looked up.
_LABELS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    before=_WRITES,
    warm=_LABELS,
    deleted=st.sets(st.integers(0, 3)),
    expired=st.sets(st.integers(0, 3)),
    after=_WRITES,
    labels=_LABELS,
)
# e0 written again into the slice of its label, which the list of the lookup before did not hold
@example(before=[(0, 0, 0.0)], warm=[(0, 0)], deleted=set(), expired=set(), after=[(0, 1, 1.0)], labels=[(0, 1)])
def test_a_lookup_with_the_slices_listed_before_finds_what_a_lookup_listing_them_first_finds(
    own_redis, before, warm, deleted, expired, after, labels
):
    """JoinStore.lookup keeps the slice list of the lookup before (SMEMBERS again only on a miss): after records
    written into new slices (the same event id in several slices too), records deleted and slices expired meanwhile,
    it returns what a reader that lists the slices first returns (slice, bucket key and record), unknown ids too;
    the commands sent beside it (the learner's GET of the current version) answer what they read."""

    async def put(store: JoinStore, writes: list[tuple[int, int, float]]) -> None:
        for n, k, x in writes:  # one put each: an event id written again into another slice is kept in both
            await store.put_many("m", [(f"e{n}", JoinRecord({"x": x}, n % 2 == 0, None, x, 1, (k + 8) * _HOUR + 5))])

    async def scenario() -> None:
        prefix = f"t{uuid.uuid4().hex}:"
        client = _client(own_redis)
        store = JoinStore(client, prefix, ttl_seconds=8 * 3600)  # slices of an hour
        writer = JoinStore(_client(own_redis), prefix, ttl_seconds=8 * 3600)  # the scorers: another process
        await put(writer, before)

        def batch(pairs: list[tuple[int, int]]) -> tuple[list[str], list[int]]:
            return [f"e{n}" for n, _ in pairs], [k * _HOUR + 7 for _, k in pairs]

        await store.lookup("m", *batch(warm))  # lists the slices
        gone = await store.lookup("m", *batch([(n, 0) for n in sorted(deleted)]))
        await store.delete([(f[0], f"e{n}") for n, f in zip(sorted(deleted), gone, strict=True) if f is not None])
        for k in expired:  # a slice whose hashes expired
            await client.delete(keys.join_slice(prefix, "m", k), *await client.keys(f"{prefix}join:{{m:{k}:*}}"))
        await put(writer, after)
        await client.set(f"{prefix}current", b"7")
        beside = [("GET", f"{prefix}current"), ("GET", f"{prefix}none")]  # read in the lookup's first exchange
        cached = await store.lookup_beside("m", *batch(labels), beside)
        fresh = await JoinStore(_client(own_redis), prefix, ttl_seconds=8 * 3600).lookup("m", *batch(labels))
        assert cached == (fresh, [b"7", None])
        assert await store.lookup_beside("m", [], [], beside) == ([], [b"7", None])
        await client.aclose()

    asyncio.run(scenario())


#: Events written for a batch lookup: (event number, slice, kind), kind 0 a record the scorer writes (read in a
#: block), 1 one decoded alone (a string feature), 2 an unreadable value, 3 a record of a layout never stored.
_ONE_SLICE_WRITES = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3), st.integers(0, 3)), max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=_ONE_SLICE_WRITES, labels=st.lists(st.integers(0, 70), min_size=1, max_size=60), own=st.integers(0, 3))
@example(writes=[(n, 2, 0) for n in range(40)], labels=list(range(40)), own=2)  # every label found at once
def test_a_batch_of_labels_of_one_slice_finds_what_each_label_finds_alone(own_redis, writes, labels, own):
    """The usual batch (every label in one slice of event time) is looked up in its nearest slice at once, grouped by
    bucket with NumPy: it finds, for each label, the bucket key and the record that find_join finds for it alone
    (records in other slices, unreadable ones and ones of an unknown layout too), with or without the layouts
    read before, and the commands sent beside it answer what they read."""
    names = ("a", "b")

    async def scenario() -> None:
        prefix = f"t{uuid.uuid4().hex}:"
        client = _client(own_redis)
        writer = JoinStore(_client(own_redis), prefix, ttl_seconds=8 * 3600)  # slices of an hour
        for n, k, kind in writes:
            score = (n + 0.5) / 128
            expiry = (k + 8) * _HOUR + 5 + n
            if kind in (0, 1):
                x = {"a": float(n), "b": score} if kind == 0 else {"a": float(n), "b": f"s{n}"}
                proba = {"False": 1.0 - score, "True": score}
                await writer.put_many("m", [(f"e{n}", JoinRecord(x, n % 2 == 0, proba, score, 1, expiry))])
            else:
                await writer.put_many("m", [(f"e{n}", JoinRecord({"a": 1.0, "b": 2.0}, True, None, 0.5, 1, expiry))])
                bucket = JoinSlices(8 * 3600 * 1000).bucket(
                    int(await client.hget(keys.join_slice(prefix, "m", k), "buckets")), f"e{n}"
                )
                known = encode_record([1.0, 2.0], True, None, 0.5, 1, n, None, names)  # its layout never stored
                value = b"\x07junk record" if kind == 2 else known
                await client.hset(keys.join_bucket(prefix, "m", k, bucket), f"e{n}", value)
        await writer.flush()
        ids, at = [f"e{n}" for n in labels], [own * _HOUR + 7] * len(labels)
        await client.set(f"{prefix}current", b"7")
        beside = [("GET", f"{prefix}current")]
        sync = redis.Redis(host="127.0.0.1", port=own_redis.port, username=REDIS_USER, password=PASSWORD)
        alone = [find_join(sync, prefix, 8 * 3600, "m", event_id, at[0]) for event_id in ids]
        store = JoinStore(client, prefix, ttl_seconds=8 * 3600)
        for _ in range(2):  # layouts unknown, then known
            found, replies = await store.lookup_beside("m", ids, at, beside)
            assert replies == [b"7"]
            assert [f[1] if f is not None else None for f in found] == alone
            for (key, record), event_id in [(f, e) for f, e in zip(found, ids, strict=True) if f is not None]:
                assert await client.hget(key, event_id) is not None and record is not None
        sync.close()
        await client.aclose()
        await writer.client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("value", [b"", b"\x01", b"\x01\x80", b"\x01\x05\x05\x01"])
def test_trace_reads_a_record_cut_short_before_its_layout_as_absent(own_redis, value):
    """``driftline trace``'s lookup of an event whose stored record ends before its layout digest: no record (as the
    learner reads it), not a struct.error out of the command."""
    prefix = f"t{uuid.uuid4().hex}:"
    sync = redis.Redis(host="127.0.0.1", port=own_redis.port, username=REDIS_USER, password=PASSWORD)

    async def write() -> None:
        writer = JoinStore(_client(own_redis), prefix, ttl_seconds=8 * 3600)
        await writer.put_many("m", [("e1", JoinRecord({"a": 1.0}, True, None, 0.5, 1, 9 * _HOUR))])
        await writer.flush()
        await writer.client.aclose()

    asyncio.run(write())
    assert find_join(sync, prefix, 8 * 3600, "m", "e1", _HOUR) is not None
    buckets = int(sync.hget(keys.join_slice(prefix, "m", 1), "buckets"))
    bucket = JoinSlices(8 * 3600 * 1000).bucket(buckets, "e1")
    sync.hset(keys.join_bucket(prefix, "m", 1, bucket), "e1", value)
    assert find_join(sync, prefix, 8 * 3600, "m", "e1", _HOUR) is None
    sync.close()
