"""The monitor feed's wire format: what the scorer hands over comes back the same; anything else is refused."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.models.feature_columns import FeatureColumns
from driftline.models.probability_rows import ProbabilityRows
from driftline.streams.monitor_feed import MAGIC, FeedBatch, FeedError, decode_feed, encode_feed

numbers = st.floats(allow_nan=True, allow_infinity=False, width=64)
categories = st.none() | st.text(max_size=5)
probabilities = st.none() | st.fixed_dictionaries({True: st.floats(0, 1), False: st.floats(0, 1)})


def _same_number(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@given(
    st.lists(st.tuples(numbers, categories, st.booleans() | st.integers(0, 3) | st.text(max_size=3), probabilities)),
    st.integers(1, 7),
    st.sampled_from([1, 2]),
)
def test_a_batch_comes_back_the_same_whatever_its_split(rows: list[tuple], max_rows: int, feed_format: int) -> None:
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
    parts = [decode_feed(raw) for raw in encode_feed(batch, max_rows=max_rows, feed_format=feed_format)]
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


def _assert_same(a: FeedBatch, b: FeedBatch) -> None:
    """Field by field and type by type (NaN equal to NaN)."""
    assert (a.model, a.version, a.event_ids, a.invalid, a.progress) == (
        b.model,
        b.version,
        b.event_ids,
        b.invalid,
        b.progress,
    )
    for x, y in ((a.partitions, b.partitions), (a.offsets, b.offsets), (a.ts, b.ts)):
        assert x.dtype == y.dtype == np.int64 and x.tolist() == y.tolist()
    assert a.predictions == b.predictions
    assert [type(p) for p in a.predictions] == [type(p) for p in b.predictions]
    assert type(a.probabilities) is type(b.probabilities) and a.probabilities == b.probabilities
    if isinstance(a.probabilities, ProbabilityRows):
        assert a.probabilities.matrix.dtype == b.probabilities.matrix.dtype == np.float64
        assert a.probabilities.classes == b.probabilities.classes
    else:
        assert [[(type(k), type(v)) for k, v in (p or {}).items()] for p in a.probabilities] == [
            [(type(k), type(v)) for k, v in (p or {}).items()] for p in b.probabilities
        ]
    assert (a.columns.names, a.columns.kept, a.columns.categorical) == (
        b.columns.names,
        b.columns.kept,
        b.columns.categorical,
    )
    assert list(a.columns.numeric) == list(b.columns.numeric)
    for name, column in a.columns.numeric.items():
        other = b.columns.numeric[name]
        assert column.dtype == other.dtype == np.float64 and column.shape == other.shape
        assert np.array_equal(column, other, equal_nan=True)
        assert column.flags.writeable and other.flags.writeable


classes = st.sampled_from([["False", "True"], [True, False], [0, 1, 2], ["a"]])


@given(
    st.integers(0, 12).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.lists(numbers | st.sampled_from([math.inf, -math.inf]), min_size=n, max_size=n), max_size=3),
            st.lists(st.lists(categories, min_size=n, max_size=n), max_size=2),
            st.lists(st.booleans() | st.integers(0, 3) | st.text(max_size=3), min_size=n, max_size=n),
            classes,
            st.lists(st.floats(0, 1) | st.sampled_from([math.nan, math.inf]), min_size=3 * n, max_size=3 * n),
            st.sampled_from(["dense", "some missing", "none"]),
        )
    ),
    st.integers(1, 7),
)
def test_format_2_decodes_to_what_format_1_decodes_to(drawn: tuple, max_rows: int) -> None:
    n, numeric_columns, categorical_columns, predictions, names, values, shape = drawn
    numeric = {f"x{j}": np.array(column, dtype=float) for j, column in enumerate(numeric_columns)}
    categorical = {f"c{j}": column for j, column in enumerate(categorical_columns)}
    columns = FeatureColumns([*categorical, *numeric], numeric, categorical, list(range(n)))
    rows = [dict(zip(names, values[3 * i : 3 * i + len(names)], strict=False)) for i in range(n)]
    if shape == "some missing":
        rows = [None if i % 2 else row for i, row in enumerate(rows)]
    elif shape == "none":
        rows = [None] * n
    batch = FeedBatch(
        "m",
        None if n % 3 == 0 else 4,
        [i % 4 for i in range(n)],
        [7 * i for i in range(n)],
        [1_700_000_000_000 - i for i in range(n)],
        [f"e{i}" for i in range(n)],
        columns,
        predictions,
        rows,
        invalid=[(1, 2, "JSONDecodeError")],
        progress={3: (5, 6)},
    )
    packed = encode_feed(batch, max_rows=max_rows)
    assert all(raw.startswith(MAGIC) for raw in packed)
    for new, old in zip(packed, encode_feed(batch, max_rows=max_rows, feed_format=1), strict=True):
        _assert_same(decode_feed(new), decode_feed(old))


def _packed() -> bytes:
    columns = FeatureColumns(["x"], {"x": np.array([1.0, 2.0])}, {}, [0, 1])
    probabilities = [{True: 0.7, False: 0.3}, {True: 0.5, False: 0.5}]
    batch = FeedBatch("m", 1, [0, 1], [5, 6], [9, 10], ["e", "f"], columns, [True, False], probabilities)
    return encode_feed(batch)[0]


def _with_header(change) -> bytes:
    raw = _packed()
    size = int.from_bytes(raw[4:8], "little")
    header = orjson.dumps(change(orjson.loads(raw[8 : 8 + size])))
    return MAGIC + len(header).to_bytes(4, "little") + header + raw[8 + size :]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (lambda: MAGIC, "error"),
        (lambda: MAGIC + b"\x05\x00\x00\x00{}", "format None"),
        (lambda: _packed()[:-1], "arrays take"),
        (lambda: _packed() + b"\x00" * 8, "arrays take"),
        (lambda: _with_header(lambda v: v | {"feed": 3}), "format 3"),
        (lambda: _with_header(lambda v: [v]), "not a JSON object"),
        (lambda: _with_header(lambda v: v | {"id": ["e"]}), "arrays take"),
        (lambda: _with_header(lambda v: v | {"id": ["e", 2]}), "event ids must be strings"),
        (lambda: _with_header(lambda v: v | {"numeric": []}), "arrays take"),
        (lambda: _with_header(lambda v: v | {"numeric": ["y"]}), "feature names do not match"),
        (lambda: _with_header(lambda v: v | {"prediction": [True]}), "one entry per event"),
        (lambda: _with_header(lambda v: v | {"proba": [[0.1]]}), "arrays take"),  # rows in the header: no matrix
        (lambda: _with_header(lambda v: v | {"version": "1"}), "version must be an int"),
        (lambda: _with_header(lambda v: v | {"categorical": {"x": ["a"]}}), "one value per event"),
        (lambda: _with_header(lambda v: {k: x for k, x in v.items() if k != "progress"}), "KeyError"),
    ],
)
def test_a_format_2_message_that_is_not_one_is_refused_with_a_reason(raw, reason: str) -> None:
    assert decode_feed(_packed()).event_ids == ["e", "f"]
    with pytest.raises(FeedError, match=reason):
        decode_feed(raw())


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
    return orjson.loads(encode_feed(batch, feed_format=1)[0])


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
