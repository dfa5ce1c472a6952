"""The learner's batch glue by columns (streams/learning.py, learning_stage.offset_bounds) gives what the per-label
loops it replaced gave: the same groups, refusals, fresh labels and offsets."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.contract.records import Label, RecordError
from driftline.streams.learning import by_model
from driftline.streams.learning_stage import last_offsets, offset_bounds

records = st.lists(
    st.tuples(st.sampled_from(["labels", "other"]), st.integers(0, 3), st.integers(0, 10**6)), max_size=40
)
parsed = st.one_of(
    st.sampled_from([None, None, None, "a", "b", "default"]).map(
        lambda model: Label(event_id="e", label=True, ts=1, model=model)
    ),
    st.just(RecordError("validate", "ValidationError", "no")),
    st.just(ValueError("unexpected")),
)


def grouped_one_by_one(kafka: list[Any], labels: list[Any], default: str) -> tuple[dict[str, Any], list[Any]]:
    """The loop by_model replaced: one (record, label) pair a label, appended to its model's list."""
    groups: dict[str, list[tuple[Any, Label]]] = defaultdict(list)
    refused = []
    for record, label in zip(kafka, labels, strict=True):
        if isinstance(label, Exception):
            refused.append((record, label))
            continue
        groups[label.model or default].append((record, label))
    return {name: ([r for r, _ in items], [lab for _, lab in items]) for name, items in groups.items()}, refused


@settings(max_examples=200, deadline=None)
@given(st.lists(parsed, max_size=30), st.booleans())
def test_labels_are_grouped_by_model_as_one_by_one(labels, one_model) -> None:
    if one_model:  # the usual batch: no refusal, one model (the batch path)
        labels = [label for label in labels if not isinstance(label, Exception) and label.model in (None, "default")]
        labels = [Label(event_id="e", label=True, ts=1, model=labels[0].model if labels else None)] * len(labels)
    kafka = [SimpleNamespace(offset=i) for i in range(len(labels))]
    groups, refused = by_model(kafka, labels, "default")
    want_groups, want_refused = grouped_one_by_one(kafka, labels, "default")
    assert list(groups) == list(want_groups)
    for name, (kept, mine) in groups.items():
        assert [r.offset for r in kept] == [r.offset for r in want_groups[name][0]]
        assert all(a is b for a, b in zip(mine, want_groups[name][1], strict=True))
    assert [(r.offset, e) for r, e in refused] == [(r.offset, e) for r, e in want_refused]


@settings(max_examples=300, deadline=None)
@given(records, st.booleans())
def test_offset_bounds_are_the_lowest_and_highest_offset_of_each_partition(records, one_partition) -> None:
    if one_partition:
        records = [("labels", 0, offset) for _, _, offset in records]
    kafka = [SimpleNamespace(topic=t, partition=p, offset=o) for t, p, o in records]
    want: dict[tuple[str, int], list[int]] = {}
    for record in kafka:  # first come, first listed
        want.setdefault((record.topic, record.partition), []).append(record.offset)
    bounds = offset_bounds(kafka)
    assert list(bounds) == list(want)
    assert bounds == {key: (min(offsets), max(offsets)) for key, offsets in want.items()}
    assert last_offsets(iter(kafka)) == {key: max(offsets) for key, offsets in want.items()}


@settings(max_examples=300, deadline=None)
@given(
    records, st.dictionaries(st.tuples(st.sampled_from(["labels", "other"]), st.integers(0, 3)), st.integers(0, 10**6))
)
def test_the_fresh_records_are_those_the_per_record_filter_kept(records, learned) -> None:
    """_learn drops what was learned already (offset below the learner's next one) only when a partition's lowest
    offset says some are: then record by record, as before; else every record is fresh."""
    kafka = [SimpleNamespace(topic=t, partition=p, offset=o) for t, p, o in records]
    starts = {tp: learned.get(tp, 0) for tp in offset_bounds(kafka)}
    per_record = [r for r in kafka if r.offset >= starts[r.topic, r.partition]]
    if not any(low < starts[tp] for tp, (low, _) in offset_bounds(kafka).items()):
        assert per_record == kafka
