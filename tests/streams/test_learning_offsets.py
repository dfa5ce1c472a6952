"""The offsets a batch of labels spans, per partition, read off its columns: the lowest and the highest of each."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from driftline.streams.learning import offset_bounds
from driftline.streams.learning_stage import last_offsets

records = st.lists(
    st.builds(
        SimpleNamespace, topic=st.sampled_from(["labels", "l2"]), partition=st.integers(0, 3), offset=st.integers(0, 50)
    ),
    min_size=1,
    max_size=40,
)


@given(records)
def test_the_bounds_of_a_batch_are_the_lowest_and_the_highest_offset_of_each_partition(batch) -> None:
    bounds = offset_bounds(batch)
    expected: dict[tuple[str, int], list[int]] = {}
    for record in batch:
        expected.setdefault((record.topic, record.partition), []).append(record.offset)
    assert bounds == {tp: (min(offs), max(offs)) for tp, offs in expected.items()}
    assert {tp: high for tp, (_, high) in bounds.items()} == last_offsets(batch)
