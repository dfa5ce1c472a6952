"""Feature dicts that are the rows of one float matrix: a batch's features handed on as a matrix, dicts on demand.

The learner decodes a batch's join records at once into one float matrix per layout (feature names).
:class:`FeatureRows` is a sequence of the feature dicts of such a matrix's rows that keeps the matrix, so
:func:`~driftline.models.minibatch.learn_rows` and :func:`~driftline.models.minibatch.predict_rows` take the
matrix as it is; a dict is built only when someone reads it (the same float64 values, bit for bit: each dict's
values are its row's). The learner's usual batch never reads one.

>>> block = FloatBlock(("a", "b"), np.array([[1.0, 2.0], [3.0, 0.5]]))
>>> block.rows(), block.row(1)
([{'a': 1.0, 'b': 2.0}, {'a': 3.0, 'b': 0.5}], {'a': 3.0, 'b': 0.5})
>>> picked = FeatureRows.of([block, block], [1, 0])
>>> picked.names, picked.matrix.tolist(), picked[0], list(picked) == block.rows()[::-1]
(('a', 'b'), [[3.0, 0.5], [1.0, 2.0]], {'a': 3.0, 'b': 0.5}, True)
>>> FeatureRows.of([block, None], [0, 0]) is None  # a row of no block: no matrix
True
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np


class FloatBlock:
    """The float feature matrix of a batch's records of one layout: row ``i`` holds the values of ``names``."""

    __slots__ = ("matrix", "names")

    def __init__(self, names: tuple[str, ...], matrix: np.ndarray):
        self.names, self.matrix = names, matrix

    def rows(self) -> list[dict[str, Any]]:
        """The feature dict of each row (``names`` distinct: one value a name)."""
        names = self.names
        return [dict(zip(names, row)) for row in self.matrix.tolist()]  # noqa: B905 - one value per name

    def row(self, i: int) -> dict[str, Any]:
        """The feature dict of row ``i`` (what :meth:`rows` holds at ``i``)."""
        return dict(zip(self.names, self.matrix[i].tolist()))  # noqa: B905 - one value per name


class FeatureRows(Sequence[dict[str, Any]]):
    """The feature dicts of the rows of ``matrix`` (float64, one column per name of ``names``, in that order: each
    dict's keys are ``names``), each built when it is read; equal to the list of them."""

    __slots__ = ("_dicts", "matrix", "names")

    def __init__(self, names: tuple[str, ...], matrix: np.ndarray):
        self.names, self.matrix = names, matrix
        self._dicts: list[dict[str, Any]] | None = None

    @classmethod
    def of(cls, blocks: Sequence[FloatBlock | None], rows: Sequence[int]) -> FeatureRows | None:
        """The dicts of row ``rows[i]`` of ``blocks[i]`` for each ``i`` when all are one block (else None)."""
        if not blocks:
            return None
        block = blocks[0]
        if block is None or not all(map(operator.is_, blocks, [block] * len(blocks))):
            return None
        return cls(block.names, block.matrix[np.fromiter(rows, dtype=np.intp, count=len(rows))])

    def take(self, positions: Sequence[int]) -> FeatureRows:
        """The rows at ``positions``, in that order."""
        return FeatureRows(self.names, self.matrix[np.fromiter(positions, dtype=np.intp, count=len(positions))])

    def dicts(self) -> list[dict[str, Any]]:
        """Every row's dict (built once)."""
        if self._dicts is None:
            self._dicts = FloatBlock(self.names, self.matrix).rows()
        return self._dicts

    def __len__(self) -> int:
        return len(self.matrix)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if self._dicts is not None or isinstance(i, slice):
            return self.dicts()[i]
        return dict(zip(self.names, self.matrix[i].tolist()))  # noqa: B905 - one value per name

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.dicts())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FeatureRows):
            other = other.dicts()
        return isinstance(other, list) and self.dicts() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.dicts())


class LabelledBatch(list):  # type: ignore[type-arg]
    """:meth:`~driftline.models.learner.OnlineLearner.learn_many`'s rows ``(event_id, x, y, prediction,
    probabilities, ts)`` whose ``x`` are, in order, the dicts of :attr:`features` (:class:`FeatureRows`).

    Iterated, its rows hold ``x = None`` (columns read by iteration never build a dict); indexed, a row holds its
    ``x`` (built then): read ``x`` by index or through :func:`features_taken`.

    >>> xs = FeatureRows(("a",), np.array([[1.0], [2.0]]))
    >>> batch = LabelledBatch.of([("e1", None, True, None, None, 1), ("e2", None, False, None, None, 2)], xs)
    >>> batch[1], [row[0] for row in batch], batch[:1]
    (('e2', {'a': 2.0}, False, None, None, 2), ['e1', 'e2'], [('e1', {'a': 1.0}, True, None, None, 1)])
    """

    features: FeatureRows

    @classmethod
    def of(cls, rows: list[tuple[Any, ...]], features: FeatureRows) -> LabelledBatch:
        out = cls(rows)
        out.features = features
        return out

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = list.__getitem__(self, i)
        return (row[0], self.features[i], *row[2:])


def features_taken(rows: Sequence[tuple[Any, ...]], taken: Sequence[int]) -> Sequence[Mapping[str, Any]]:
    """The ``x`` of ``rows[i]`` for each ``i`` in ``taken``: of the batch's :class:`FeatureRows` when it is a
    :class:`LabelledBatch` (with its matrix, no dict built).

    >>> xs = FeatureRows(("a",), np.array([[1.0], [2.0]]))
    >>> rows = LabelledBatch.of([("e1", None, True, None, None, 1), ("e2", None, False, None, None, 2)], xs)
    >>> features_taken(rows, [0, 1]) is xs, features_taken(rows, [1]).matrix.tolist()
    (True, [[2.0]])
    >>> features_taken([("e1", {"a": 1.0}, True, None, None, 1)], [0])
    [{'a': 1.0}]
    """
    if type(rows) is LabelledBatch:
        return rows.features if len(taken) == len(rows) else rows.features.take(taken)
    if len(taken) == len(rows):  # every row (``taken`` is increasing)
        return list(map(_X, rows))
    return [rows[i][1] for i in taken]


_X = operator.itemgetter(1)


def matrix_of(xs: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, ...], np.ndarray] | None:
    """The names and the float matrix of ``xs`` when they are :class:`FeatureRows` (else None).

    >>> matrix_of([{"a": 1.0}]) is None
    True
    """
    if type(xs) is not FeatureRows:
        return None
    return xs.names, xs.matrix
