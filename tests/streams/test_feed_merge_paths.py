"""The merger's bookkeeping of a few events, event by event, is exactly its NumPy bookkeeping: the same events
released in the same order, the same counters and the same state, over random feeds (duplicates, re-reads,
events older than earlier ones, direct events, a small cap)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.streams.feed_merge import FeedMerger
from driftline.streams.monitor_feed import DIRECT
from tests.streams.test_feed_merge import feed

row = st.tuples(st.sampled_from([DIRECT, 0, 1, 2, 3]), st.integers(0, 30), st.integers(-5, 60))
message = st.tuples(
    st.lists(row, max_size=12),
    st.dictionaries(st.integers(0, 3), st.tuples(st.integers(-5, 60), st.integers(0, 31)), max_size=4),
    st.integers(1, 3),
)
ends = st.dictionaries(st.integers(0, 3), st.integers(0, 31), max_size=4)


def state(merger: FeedMerger) -> dict:
    """What the merger holds, buffered events included (in their order)."""
    kept = {k: v for k, v in vars(merger).items() if k not in ("_buffer", "few")}
    kept["buffer"] = [
        (r.partitions.tolist(), r.offsets.tolist(), r.ts.tolist(), r.rank.tolist(), r.event_ids) for r in merger._buffer
    ]
    return kept


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(message, ends), max_size=12), st.integers(3, 40))
def test_a_few_events_at_a_time_are_merged_as_numpy_merges_them(steps: list, cap: int) -> None:
    event_by_event, in_numpy = FeedMerger([0, 1], max_buffered=cap), FeedMerger([0, 1], max_buffered=cap)
    event_by_event.few, in_numpy.few = 10**9, 0
    for k, ((rows, progress, version), end) in enumerate(steps):
        for merger in (event_by_event, in_numpy):
            merger.add(k, feed(rows, progress, version))
        a, b = event_by_event.release(end), in_numpy.release(end)
        assert [(r.version, r.event_ids, r.ts) for r in a.runs] == [(r.version, r.event_ids, r.ts) for r in b.runs]
        assert a.invalid == b.invalid
        assert state(event_by_event) == state(in_numpy)
