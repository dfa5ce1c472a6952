"""The learner's remembered ids: ring order across the wrap, pickling, resizing, the time window."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.models.learned_ids import CLOCK_LABELS, UNDATED, LearnedIds, digest, digest_many


def test_a_wrapped_ring_pickles_in_arrival_order_and_keeps_forgetting_oldest_first() -> None:
    ids = LearnedIds(capacity=5, window_ms=10**9)
    for i in range(12):
        ids.add(digest(f"e{i}"), i)
    back = pickle.loads(pickle.dumps(ids))
    assert [digest(f"e{i}") in back for i in range(12)] == [False] * 7 + [True] * 5
    assert back._ordered()[1].tolist() == [7, 8, 9, 10, 11] and back.forgotten_early == 7
    back.add(digest("e12"), 12)
    assert digest("e7") not in back and digest("e12") in back and len(back) == 5


def test_resize_keeps_the_newest_and_counts_the_rest_as_forgotten_early() -> None:
    ids = LearnedIds(capacity=10, window_ms=10**9)
    for i in range(8):
        ids.add(digest(f"e{i}"), None)
    ids.resize(3, 1000)
    assert len(ids) == 3 and ids.forgotten_early == 5 and ids._ordered()[1].tolist() == [UNDATED] * 3
    assert [digest(f"e{i}") in ids for i in range(8)] == [False] * 5 + [True] * 3


def test_ids_leave_by_time_without_counting_as_early() -> None:
    ids = LearnedIds(capacity=100, window_ms=50)
    for i in range(10):
        ids.add(digest(f"e{i}"), i * 10)
    ids.advance([90] * CLOCK_LABELS)
    ids.add(digest("x"), 90)
    assert len(ids) == 7 and ids.forgotten_early == 0 and ids.latest_ts == 90
    assert [digest(f"e{i}") in ids for i in range(10)] == [False] * 4 + [True] * 6


def test_the_clock_is_the_median_of_recent_labels_and_never_goes_back() -> None:
    ids = LearnedIds(capacity=100, window_ms=50)
    ids.advance([100, 110, 120])
    ids.advance([10**13])
    assert ids.latest_ts == 120
    ids.advance([10, 20, 30, 40])
    assert ids.latest_ts == 120 and pickle.loads(pickle.dumps(ids)).latest_ts == 120


def test_the_extreme_keys_and_times_survive_a_wrapped_ring_round_trip() -> None:
    """Digests are signed 64-bit, an undated id's time is the largest int64: both come back exactly from the
    int64 rings, and what a checkpoint read is a copy the ring does not change afterwards."""
    ids = LearnedIds(capacity=4, window_ms=10**12)
    extremes = [-(2**63), 2**63 - 1, -1, 0, 12345, -98765]
    for i, key in enumerate(extremes):
        ids.add(key, None if i % 2 else i)
    keys, times = ids._ordered()
    ids.add(7, 7)
    assert keys.tolist() == extremes[2:] and times.tolist() == [2, UNDATED, 4, UNDATED]
    back = pickle.loads(pickle.dumps(ids))
    assert back._ordered()[0].tolist() == [2**63 - 1, 0, 12345, -98765][1:] + [7] and -(2**63) not in back
    back.add(8, 8)
    assert back._ordered()[0].tolist() == [12345, -98765, 7, 8] and len(back) == 4


times_of_labels = st.one_of(st.none(), st.integers(0, 400), st.sampled_from([-(2**63), 2**63 - 2, 2**70]))


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 12),
    window_ms=st.integers(0, 60),
    batches=st.lists(
        st.tuples(st.lists(st.integers(0, 400), max_size=5), st.lists(times_of_labels, max_size=20)), max_size=8
    ),
    forward=st.booleans(),
)
def test_add_many_leaves_what_adding_one_by_one_leaves(capacity, window_ms, batches, forward) -> None:
    """On arrays or one by one, a batch of ids leaves the ring, its set, the early count and the pickled state
    where :meth:`LearnedIds.add` of each id leaves them: ids leaving by time or by capacity, undated ones, times
    in and out of order (``forward``: each batch's times sorted, the usual case the arrays take), times beyond
    int64 (one by one, as add raises)."""
    one, many = LearnedIds(capacity, window_ms), LearnedIds(capacity, window_ms)
    next_key = 0
    for clock, times in batches:
        if forward:
            times = sorted(times, key=lambda t: -1 if t is None else t)
        keys = list(range(next_key, next_key + len(times)))
        next_key += len(times)
        for ids in (one, many):
            ids.advance(clock)
        failed = []
        for ids, add in ((one, None), (many, many.add_many)):
            try:
                if add is None:
                    for key, ts in zip(keys, times, strict=True):
                        ids.add(key, ts)
                else:
                    add(keys, times)
            except OverflowError:
                failed.append(ids)
        if failed:  # a time beyond int64: both refuse it (one by one, the ids before it already added)
            assert len(failed) == 2
            return
        assert pickle.dumps(one.__getstate__()) == pickle.dumps(many.__getstate__())
        assert one._present == many._present == set(many._ordered()[0].tolist())
        assert (one._start, one._size, one.forgotten_early) == (many._start, many._size, many.forgotten_early)
        for ids in (one, many):  # the ring's int objects (what the set drops an id by) are its keys, in order
            ring = [ids._objects[(ids._start + i) % ids.capacity] for i in range(len(ids))]
            assert ring == ids._ordered()[0].tolist() and all(type(key) is int for key in ring)


@pytest.mark.parametrize("capacity", [1200, 2000])
def test_add_many_takes_the_arrays_when_label_times_move_forward(capacity: int) -> None:
    """The usual batches (times moving forward within the window, the oldest ids leaving by capacity, 1200, or by
    time, 2000) are added on arrays, to the same state as one by one."""
    ids, reference = LearnedIds(capacity, window_ms=1000), LearnedIds(capacity, window_ms=1000)
    taken = []
    arrays = ids._add_arrays
    ids._add_arrays = lambda keys, times: taken.append(arrays(keys, times)) or taken[-1]  # type: ignore[method-assign]
    for batch in range(20):
        times = list(range(batch * 500, batch * 500 + 500))
        keys = [digest(f"e{t}") for t in times]
        ids.advance(times)
        ids.add_many(keys, times)
        reference.advance(times)
        for key, ts in zip(keys, times, strict=True):
            reference.add(key, ts)
    assert taken == [True] * 20
    assert pickle.dumps(ids) == pickle.dumps(reference)
    if capacity == 1200:
        assert ids.forgotten_early > 0 and len(ids) == 1200
    else:
        assert ids.forgotten_early == 0 and len(ids) < 2000 and ids._ordered()[1][0] >= ids.latest_ts - 1000


def test_digest_many_is_digest_of_each_id() -> None:
    event_ids = ["", "e1", "é-ü", "x" * 300] + [f"ev-{i}" for i in range(100)]
    assert digest_many(event_ids) == [digest(e) for e in event_ids]
