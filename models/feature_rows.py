"""Feature dicts that are the rows of one float matrix: a batch's features handed on as a matrix as well as dicts.

The learner decodes a batch's join records at once into one float matrix per layout (feature names), then builds
each record's feature dict from its row. :class:`FeatureRows` is a list of such dicts that also keeps their matrix,
so :func:`~driftline.models.minibatch.learn_rows` and :func:`~driftline.models.minibatch.predict_rows` take the
matrix instead of turning the dicts back into one (the same float64 values, bit for bit: each dict's values are
its row's). Anyone else sees a plain list of plain dicts.

>>> block = FloatBlock(("a", "b"), np.array([[1.0, 2.0], [3.0, 0.5]]))
>>> rows = block.rows()
>>> rows
[{'a': 1.0, 'b': 2.0}, {'a': 3.0, 'b': 0.5}]
>>> picked = FeatureRows.of(rows[::-1], [block, block], [1, 0])
>>> picked.names, picked.matrix.tolist()
(('a', 'b'), [[3.0, 0.5], [1.0, 2.0]])
>>> FeatureRows.of(rows, [block, None], [0, 0]) is None  # a row of no block: no matrix
True
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

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


class FeatureRows(list):  # type: ignore[type-arg]
    """A list of feature dicts whose values are the rows of ``matrix`` (float64, one column per name of ``names``,
    in that order: each dict's keys are ``names``)."""

    names: tuple[str, ...]
    matrix: np.ndarray

    @classmethod
    def of(
        cls, xs: Sequence[Mapping[str, Any]], blocks: Sequence[FloatBlock | None], rows: Sequence[int]
    ) -> FeatureRows | None:
        """``xs`` with their matrix when each ``xs[i]`` is row ``rows[i]`` of ``blocks[i]``, all one block (else
        None: the dicts alone)."""
        if not xs:
            return None
        block = blocks[0]
        if block is None or not all(map(operator.is_, blocks, [block] * len(blocks))):
            return None
        out = cls(xs)
        out.names = block.names
        out.matrix = block.matrix[np.fromiter(rows, dtype=np.intp, count=len(rows))]
        return out


class LabelledBatch(list):  # type: ignore[type-arg]
    """:meth:`~driftline.models.learner.OnlineLearner.learn_many`'s rows ``(event_id, x, y, prediction,
    probabilities, ts)`` whose ``x`` are, in order, the dicts of :attr:`features` (:class:`FeatureRows`)."""

    features: FeatureRows

    @classmethod
    def of(cls, rows: list[tuple[Any, ...]], features: FeatureRows) -> LabelledBatch:
        out = cls(rows)
        out.features = features
        return out


def features_taken(rows: Sequence[tuple[Any, ...]], taken: Sequence[int]) -> Sequence[Mapping[str, Any]]:
    """The ``x`` of ``rows[i]`` for each ``i`` in ``taken``: the batch's :class:`FeatureRows` when it is a
    :class:`LabelledBatch` and every row is taken.

    >>> block = FloatBlock(("a",), np.array([[1.0], [2.0]]))
    >>> xs = FeatureRows.of(block.rows(), [block, block], [0, 1])
    >>> rows = LabelledBatch.of([("e1", xs[0], True, None, None, 1), ("e2", xs[1], False, None, None, 2)], xs)
    >>> features_taken(rows, [0, 1]) is xs, features_taken(rows, [1])
    (True, [{'a': 2.0}])
    """
    if len(taken) == len(rows):  # every row (``taken`` is increasing)
        return rows.features if type(rows) is LabelledBatch else list(map(_X, rows))
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
