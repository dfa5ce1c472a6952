"""Per-event class probabilities held as one matrix: what a list of ``{class: probability}`` dicts says, without
a dict per event.

A batch whose every event has a probability for each of the same classes (what a classifier scores) is a
matrix, one row per event and one column per class. :class:`ProbabilityRows` is that matrix read as the list of
dicts the scorer gives (``rows[i]`` is event ``i``'s dict, equal to the one it was built from), and it also gives
a class's column at once (:meth:`ProbabilityRows.column`): the monitors read the positive class's probability, or
each event's highest, from it without a dict per event. Rows are taken, sliced and joined as arrays.

>>> rows = ProbabilityRows([False, True], np.array([[0.25, 0.75], [0.5, 0.5], [0.875, 0.125]]))
>>> rows[0], len(rows), rows.column(True).tolist()
({False: 0.25, True: 0.75}, 3, [0.75, 0.5, 0.125])
>>> list(rows.take([2, 0])) == [rows[2], rows[0]], rows[1:].column(False).tolist()
(True, [0.5, 0.875])
>>> ProbabilityRows.concat([rows[:1], rows[2:]]).matrix.tolist()
[[0.25, 0.75], [0.875, 0.125]]
>>> rows.column("other").tolist()  # a class none of the rows has: no probability
[nan, nan, nan]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

__all__ = ["ProbabilityRows"]


class ProbabilityRows(Sequence[dict[Any, float]]):
    """``matrix[i, j]``: event ``i``'s probability of ``classes[j]`` (see the module docstring)."""

    __slots__ = ("classes", "matrix")

    def __init__(self, classes: Sequence[Any], matrix: np.ndarray):
        if matrix.ndim != 2 or matrix.shape[1] != len(classes):
            raise ValueError("the matrix must have one column per class")
        self.classes = list(classes)
        self.matrix = matrix

    def __len__(self) -> int:
        return self.matrix.shape[0]

    @overload
    def __getitem__(self, index: int) -> dict[Any, float]: ...

    @overload
    def __getitem__(self, index: slice) -> ProbabilityRows: ...

    def __getitem__(self, index: int | slice) -> dict[Any, float] | ProbabilityRows:
        if isinstance(index, slice):
            return ProbabilityRows(self.classes, self.matrix[index])
        return dict(zip(self.classes, self.matrix[index].tolist(), strict=True))

    def __iter__(self) -> Iterator[dict[Any, float]]:
        return map(dict, map(zip, itertools.repeat(self.classes), self.matrix.tolist()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ProbabilityRows):
            return self.classes == other.classes and np.array_equal(self.matrix, other.matrix)
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ProbabilityRows({self.classes!r}, {len(self)} rows)"

    def column(self, cls: Any) -> np.ndarray:
        """Every event's probability of ``cls`` (NaN when ``cls`` is not one of the classes)."""
        j = {known: j for j, known in enumerate(self.classes)}.get(cls)  # what each row's dict.get finds
        return np.full(len(self), np.nan) if j is None else self.matrix[:, j]

    def highest(self) -> np.ndarray:
        """Every event's highest probability."""
        return self.matrix.max(axis=1) if self.classes else np.full(len(self), np.nan)

    def take(self, positions: Sequence[int] | np.ndarray) -> ProbabilityRows:
        """The rows at ``positions``, in that order."""
        return ProbabilityRows(self.classes, self.matrix[np.asarray(positions, dtype=np.intp)])

    @staticmethod
    def concat(parts: Sequence[ProbabilityRows]) -> ProbabilityRows:
        """``parts`` one after the other (they must have the same classes, in the same order)."""
        classes = parts[0].classes
        if any(p.classes != classes for p in parts):
            raise ValueError("probability rows of different classes")
        return ProbabilityRows(classes, np.concatenate([p.matrix for p in parts]))
