"""The monitor feed's wire format: what the scorer hands over comes back the same; anything else is refused."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.models.feature_columns import FeatureColumns
from driftline.streams.monitor_feed import FeedBatch, FeedError, decode_feed, encode_feed

numbers = st.floats(allow_nan=True, allow_infinity=False, width=64)
categories = st.none() | st.text(max_size=5)
probabilities = st.none() | st.fixed_dictionaries({True: st.floats(0, 1), False: st.floats(0, 1)})


def _same_number(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@given(
    st.lists(st.tuples(numbers, categories, st.booleans() | st.integers(0, 3) | st.text(max_size=3), probabilities)),
    st.integers(1, 7),
)
def test_a_batch_comes_back_the_same_whatever_its_split(rows: list[tuple], max_rows: int) -> None:
    n = len(rows)
    columns = FeatureColumns(
        ["x", "c"], {"x": np.array([r[0] for r in rows], dtype=float)}, {"c": [r[1] for r in rows]}, list(range(n))
    )
    batch = FeedBatch(
        "m",
        2,
        [i % 4 for i in range(n)],
        list(range(n)),
        [1_700_000_000_000 + i for i in range(n)],
        [f"e{i}" for i in range(n)],
        columns,
        [r[2] for r in rows],
        [r[3] for r in rows],
        invalid=[(3, 9, "ValidationError")],
        progress={0: (123, 7), 1: (45, 0)},
    )
    parts = [decode_feed(raw) for raw in encode_feed(batch, max_rows=max_rows)]
    assert len(parts) == max(1, math.ceil(n / max_rows))
    assert all(not p.progress and not p.invalid for p in parts[:-1])  # progress only once its events are out
    assert parts[-1].progress == {0: (123, 7), 1: (45, 0)} and parts[-1].invalid == [(3, 9, "ValidationError")]
    assert [e for p in parts for e in p.event_ids] == batch.event_ids
    assert [int(t) for p in parts for t in p.ts] == list(batch.ts)
    assert [int(o) for p in parts for o in p.partitions] == list(batch.partitions)
    assert [v for p in parts for v in p.predictions] == batch.predictions
    decoded = [v for p in parts for v in p.predictions]
    assert all(type(a) is type(b) for a, b in zip(decoded, batch.predictions, strict=True))
    assert [v for p in parts for v in p.probabilities] == batch.probabilities
    assert [v for p in parts for v in p.columns.categorical["c"]] == columns.categorical["c"]
    xs = [v for p in parts for v in p.columns.numeric["x"].tolist()]
    assert all(_same_number(a, b) for a, b in zip(xs, columns.numeric["x"].tolist(), strict=True))
    assert {p.version for p in parts} == {2}


def test_progress_alone_goes_in_one_message() -> None:
    [raw] = encode_feed(FeedBatch.progress_only("m", {2: (7, 3)}, [(2, 1, "JSONDecodeError")]))
    decoded = decode_feed(raw)
    assert (len(decoded), decoded.version, decoded.progress, decoded.invalid) == (
        0,
        None,
        {2: (7, 3)},
        [(2, 1, "JSONDecodeError")],
    )


def _valid() -> dict:
    columns = FeatureColumns(["x"], {"x": np.array([1.0])}, {}, [0])
    batch = FeedBatch("m", 1, [0], [5], [9], ["e"], columns, [True], [{True: 0.7, False: 0.3}])
    return orjson.loads(encode_feed(batch)[0])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda v: "not json", "JSONDecodeError"),
        (lambda v: [v], "not a JSON object"),
        (lambda v: v | {"feed": 99}, "format 99"),
        (lambda v: v | {"id": [1]}, "event ids must be strings"),
        (lambda v: v | {"ts": [1, 2]}, "ts must have one int per event"),
        (lambda v: v | {"ts": ["x"]}, "ValueError"),
        (lambda v: v | {"numeric": {"x": [1.0, 2.0]}}, "one value per event"),
        (lambda v: v | {"numeric": {"y": [1.0]}}, "feature names do not match"),
        (lambda v: v | {"proba": [[0.1]]}, "one value per class"),
        (lambda v: v | {"prediction": []}, "one entry per event"),
        (lambda v: v | {"version": "1"}, "version must be an int"),
        (lambda v: {k: x for k, x in v.items() if k != "progress"}, "KeyError"),
        (lambda v: v | {"progress": [[0, 1]]}, "ValueError"),
    ],
)
def test_anything_else_is_refused_with_a_reason(change, reason: str) -> None:
    changed = change(_valid())
    raw = changed.encode() if isinstance(changed, str) else orjson.dumps(changed)
    assert decode_feed(orjson.dumps(_valid())).event_ids == ["e"]
    with pytest.raises(FeedError, match=reason):
        decode_feed(raw)
    with pytest.raises(FeedError):
        decode_feed(None)
