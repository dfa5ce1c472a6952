"""Probabilities as a matrix read exactly as the list of dicts it stands for: rows, columns, slices, takes, joins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.models.probability_rows import ProbabilityRows

classes = st.lists(st.booleans() | st.integers(-3, 3) | st.text(max_size=3), min_size=1, max_size=4, unique=True)


@st.composite
def matrices(draw: st.DrawFn) -> tuple[list, np.ndarray]:
    known = draw(classes)
    n = draw(st.integers(0, 12))
    values = draw(st.lists(st.floats(0, 1), min_size=n * len(known), max_size=n * len(known)))
    return known, np.array(values, dtype=np.float64).reshape(n, len(known))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@given(matrices(), st.booleans() | st.integers(-3, 3) | st.text(max_size=3), st.data())
def test_the_rows_are_the_dicts_and_a_column_is_what_each_dict_gives(
    drawn: tuple[list, np.ndarray], cls: object, data: st.DataObject
) -> None:
    known, matrix = drawn
    rows = ProbabilityRows(known, matrix)
    dicts = [dict(zip(known, row, strict=True)) for row in matrix.tolist()]
    assert list(rows) == dicts and [rows[i] for i in range(len(rows))] == dicts and rows == dicts
    assert all(list(a) == list(b) for a, b in zip(rows, dicts, strict=True))  # the classes' order too
    assert all(
        _same(a, b) for a, b in zip(rows.column(cls).tolist(), [d.get(cls, math.nan) for d in dicts], strict=True)
    )
    assert rows.highest().tolist() == [max(d.values()) for d in dicts]
    positions = data.draw(st.lists(st.integers(0, max(0, len(rows) - 1)), max_size=len(rows) * 2)) if dicts else []
    assert list(rows.take(positions)) == [dicts[i] for i in positions]
    a, b = sorted(data.draw(st.tuples(st.integers(0, len(rows)), st.integers(0, len(rows)))))
    assert list(rows[a:b]) == dicts[a:b]
    assert list(ProbabilityRows.concat([rows[:a], rows[a:b], rows[b:]])) == dicts


def test_rows_of_other_classes_or_shapes_are_refused() -> None:
    with pytest.raises(ValueError):
        ProbabilityRows([True], np.zeros((3, 2)))
    with pytest.raises(ValueError):
        ProbabilityRows.concat([ProbabilityRows([True], np.zeros((1, 1))), ProbabilityRows([False], np.zeros((1, 1)))])
