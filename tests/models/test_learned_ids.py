"""The learner's remembered ids: ring order across the wrap, pickling, resizing, the time window."""

from __future__ import annotations

import pickle

from driftline.models.learned_ids import CLOCK_LABELS, UNDATED, LearnedIds, digest


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
