"""Merging the scorers' feeds of one model: event-time order, partitions at their end, duplicates, the cap and a
restart from the checkpoint."""

from __future__ import annotations

import pickle
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.models.feature_columns import FeatureColumns
from driftline.streams.feed_merge import COMPACT_PARTS, FeedMerger
from driftline.streams.monitor_feed import FeedBatch


def feed(rows: list[tuple[int, int, int]], progress: dict[int, tuple[int, int]], version: int = 1) -> FeedBatch:
    """A feed message of ``rows`` (partition, offset, ts), with the scorers' ``progress`` (partition: ts handed over
    up to, next offset); each event's id is ``p<partition>o<offset>``."""
    n = len(rows)
    columns = FeatureColumns(
        ["x", "c"], {"x": np.array([float(t) for _, _, t in rows])}, {"c": [str(o) for _, o, _ in rows]}, list(range(n))
    )
    return FeedBatch(
        "m",
        version,
        [p for p, _, _ in rows],
        [o for _, o, _ in rows],
        [t for _, _, t in rows],
        [f"p{p}o{o}" for p, o, _ in rows],
        columns,
        [t % 2 == 0 for _, _, t in rows],
        [{True: 0.5, False: 0.5}] * n,
        progress=progress,
    )


def released(merger: FeedMerger, ends: dict[int, int]) -> list[tuple[str, int]]:
    out = []
    for run in merger.release(ends).runs:
        assert run.columns.numeric["x"].tolist() == [float(t) for t in run.ts]  # the columns travel with the ids
        assert run.columns.categorical["c"] == [e.split("o")[1] for e in run.event_ids]
        out += list(zip(run.event_ids, run.ts, strict=True))
    return out


def scorers(streams: dict[int, list[int]], owners: dict[int, int], chunk: int, seed: int) -> list[FeedBatch]:
    """The feed messages of scorers each merging its own partitions in time order (as BatchSource does), in an
    order mixing the scorers' messages."""
    rng = random.Random(seed)
    per_scorer: dict[int, list[FeedBatch]] = {}
    for scorer in set(owners.values()):
        mine = sorted(
            (t, p, o) for p, ts in streams.items() if owners[p] == scorer for o, t in enumerate(ts)
        )  # in time order across its partitions, each partition in offset order
        high: dict[int, int] = {}
        handed: dict[int, int] = {}
        batches = []
        for a in range(0, max(len(mine), 1), chunk):
            part = mine[a : a + chunk]
            for t, p, o in part:
                high[p], handed[p] = max(t, high.get(p, -1)), o + 1
            progress = {p: (high.get(p, -1), handed.get(p, 0)) for p in streams if owners[p] == scorer}
            batches.append(feed([(p, o, t) for t, p, o in part], progress))
        per_scorer[scorer] = batches
    out = []
    while any(per_scorer.values()):
        scorer = rng.choice([s for s, b in per_scorer.items() if b])
        out.append(per_scorer[scorer].pop(0))
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 500), max_size=25), min_size=1, max_size=4),
    st.integers(1, 6),
    st.integers(0, 10**6),
)
def test_two_scorers_feeds_come_out_in_time_order_each_event_once(
    partitions: list[list[int]], chunk: int, seed: int
) -> None:
    streams = {p: sorted(ts) for p, ts in enumerate(partitions)}
    owners = {p: p % 2 for p in streams}  # two workers, interleaved partitions
    merger, out = FeedMerger(partitions=streams), []
    ends = {p: len(ts) for p, ts in streams.items()}  # the whole stream is on the broker (a backlog)
    for offset, message in enumerate(scorers(streams, owners, chunk, seed)):
        merger.add(offset, message)
        out += released(merger, ends)
    expected = sorted((t, p, o) for p, ts in streams.items() for o, t in enumerate(ts))
    assert sorted(out) == sorted((f"p{p}o{o}", t) for t, p, o in expected)
    assert [t for _, t in out] == sorted(t for t, _, _ in expected)  # in time order, nothing held back at the end
    assert merger.out_of_order == 0 and merger.buffered == 0


def test_a_partition_never_heard_of_is_waited_for_one_at_its_end_is_not() -> None:
    merger = FeedMerger(partitions=range(3))
    ends = {0: 3, 1: 1, 2: 1}
    merger.add(0, feed([(0, 0, 10), (0, 1, 20)], {0: (20, 2)}))
    merger.add(1, feed([(1, 0, 15)], {1: (15, 1)}))
    assert released(merger, ends) == []  # partition 2 was never heard of, and it holds an event
    assert released(merger, ends | {2: 0}) == [("p0o0", 10), ("p1o0", 15), ("p0o1", 20)]  # empty: watermark 20
    ends = {0: 3, 1: 2, 2: 0}
    merger.add(3, feed([(1, 1, 30)], {1: (30, 2)}))
    assert released(merger, ends) == []  # partition 0 (not at its end) may still hold events before 30
    merger.add(4, feed([(0, 2, 25)], {0: (25, 3)}))
    assert released(merger, ends) == [("p0o2", 25), ("p1o1", 30)]
    assert merger.out_of_order == 0


def test_a_partition_its_scorer_was_level_with_is_waited_for_once_more_events_are_on_the_broker() -> None:
    merger = FeedMerger(partitions=[0, 1])
    merger.add(0, feed([], {1: (-1, 0)}))  # the second scorer, idle before the stream starts
    merger.add(1, feed([(0, o, 10 * o) for o in range(4)], {0: (30, 4)}))
    assert released(merger, {0: 8, 1: 4}) == []  # partition 1 has events its scorer has not handed over yet
    merger.add(2, feed([(1, o, 10 * o + 5) for o in range(4)], {1: (35, 4)}))
    assert [t for _, t in released(merger, {0: 8, 1: 4})] == [0, 5, 10, 15, 20, 25, 30]  # 35: wait for 0
    merger.add(3, feed([(0, o, 10 * o) for o in range(4, 8)], {0: (70, 8)}))
    assert [t for _, t in released(merger, {0: 8, 1: 4})] == [35, 40, 50, 60, 70]
    assert merger.out_of_order == 0


def test_events_held_back_by_the_watermark_wait_over_many_messages_and_come_out_in_order() -> None:
    """`bench peers`' paced stretch after its backlog: partition 0's new events are older than its backlog's last
    (their rank is that event's time) and partition 1, not at its end, holds the watermark below them: message after
    message nothing is due (the buffer is not sorted again each time, and its parts are joined now and then), and
    everything comes out in order once partition 1 is at its end."""
    merger = FeedMerger(partitions=[0, 1])
    merger.add(0, feed([(0, 0, 1000)], {0: (1000, 1)}))
    merger.add(1, feed([(1, 0, 500)], {1: (500, 1)}))
    assert released(merger, {0: 1, 1: 2}) == [("p1o0", 500)]  # partition 1 may still hold events before 1000
    for offset in range(1, 201):
        merger.add(offset + 1, feed([(0, offset, 600 + offset)], {0: (1000, offset + 1)}))  # ranked 1000
        assert released(merger, {0: offset + 1, 1: 2}) == []
    assert merger.buffered == 201 and len(merger._buffer) <= COMPACT_PARTS and merger.resume_offset == 0
    assert released(merger, {0: 201, 1: 1}) == [("p0o0", 1000)] + [(f"p0o{o}", 600 + o) for o in range(1, 201)]
    assert merger.buffered == 0 and merger.out_of_order == 200


def test_duplicates_after_a_rebalance_are_dropped_by_source_offset() -> None:
    merger = FeedMerger(partitions=[0])
    merger.add(0, feed([(0, o, 10 * o) for o in range(5)], {0: (40, 5)}))
    first = released(merger, {0: 8})
    # the partition moves to another worker, which reads it again from its last commit (offset 2)
    merger.add(1, feed([(0, o, 10 * o) for o in range(2, 8)], {0: (70, 8)}))
    assert first + released(merger, {0: 8}) == [(f"p0o{o}", 10 * o) for o in range(8)]
    assert merger.duplicates == 3


def test_the_buffer_is_capped_and_events_monitored_out_of_order_are_counted() -> None:
    merger = FeedMerger(partitions=[0, 1], max_buffered=4)
    ends = {0: 10, 1: 2}
    merger.add(0, feed([(0, o, o) for o in range(10)], {0: (9, 10)}))  # partition 1 silent: 6 go anyway
    assert [t for _, t in released(merger, ends)] == [0, 1, 2, 3, 4, 5]
    assert (merger.forced, merger.buffered, merger.out_of_order) == (6, 4, 0)
    merger.add(1, feed([(1, 0, 3), (1, 1, 8)], {1: (8, 2)}))
    assert [t for _, t in released(merger, ends)] == [3, 6, 7, 8, 8, 9] and merger.out_of_order == 1  # 3 after 5


def test_a_restored_merger_reads_the_feed_again_from_its_resume_offset_and_monitors_nothing_twice() -> None:
    streams = {0: list(range(0, 60, 3)), 1: list(range(1, 60, 2))}
    ends = {p: len(ts) for p, ts in streams.items()}
    messages = scorers(streams, {0: 0, 1: 1}, chunk=4, seed=3)
    merger, out = FeedMerger(partitions=streams), []
    for offset, message in enumerate(messages[:7]):
        merger.add(offset, message)
        out += released(merger, ends)
    assert merger.buffered > 0  # a checkpoint with events still waiting
    restored = pickle.loads(pickle.dumps(merger))
    assert restored.buffered == 0 and restored.next_message == merger.resume_offset < 7
    for offset in range(restored.next_message, len(messages)):
        restored.add(offset, messages[offset])
        out += released(restored, ends)
    assert sorted(e for e, _ in out) == sorted(f"p{p}o{o}" for p, ts in streams.items() for o in range(len(ts)))
    assert [t for _, t in out] == sorted(t for ts in streams.values() for t in ts)


def test_invalid_events_are_counted_once_and_versions_cut_runs() -> None:
    merger = FeedMerger(partitions=[0])
    message = feed([(0, 0, 1), (0, 1, 2)], {0: (3, 3)})
    message.invalid = [(0, 2, "ValidationError")]
    merger.add(0, message)
    merger.add(1, feed([(0, 3, 4)], {0: (4, 4)}, version=2))
    again = feed([], {})
    again.invalid = [(0, 2, "ValidationError"), (0, 5, "JSONDecodeError")]  # re-read after a rebalance
    merger.add(2, again)
    out = merger.release({0: 6})
    assert out.invalid == ["ValidationError", "JSONDecodeError"]
    assert [(run.version, run.event_ids) for run in out.runs] == [(1, ["p0o0", "p0o1"]), (2, ["p0o3"])]
