"""The learned rows of a checkpoint as arguments of the labelled stream's append script, with few ``orjson`` calls.

Each row of ``{prefix}labelled:{model}`` is one stream entry, ``x`` (the features, JSON) and ``y`` (the label,
JSON). Two ``orjson.dumps`` calls a row whose results are all kept until the write cost up to ~2-5 us each
whatever the value (each result's buffer is carved from fresh heap pages; one call alone takes ~0.1-0.6 us), one
dumps of a list of 2,000 feature dicts ~0.3 us a dict, so a chunk of rows is sent as two arguments:

- ``xs``: ONE ``orjson.dumps`` of the list of feature dicts, ``[{...},{...}]``; the script cuts it at ``},{``. That
  cut is exact when ``},{`` occurs exactly ``len(rows) - 1`` times (each element is a ``{...}`` and the elements
  are separated by ``,``, so those are the separators: any other occurrence, in a string or a nested value, makes
  the count larger, and the chunk is then sent one argument a value, as before: :func:`packed` returns None);
- ``ys``: the labels' JSON, each dumped once per distinct value (:class:`LabelJson`), joined by newlines (JSON text
  never holds a raw newline: ``orjson`` escapes it in strings).

The entries are byte for byte those of one ``orjson.dumps`` a value.

The learner keeps the rows of a batch decoded at once as :class:`MatrixRows` (rows of its float matrix, and their
labels: no feature dict is built for them). A run of them of one layout is sent as :data:`APPEND_MATRIX`'s
arguments: ``xs`` ONE ``orjson.dumps`` of the rows of the matrix, ``[[...],[...]]`` (cut at ``],[``: a float's
JSON holds no bracket), ``ys`` as above, and the layout's names; each entry is ``x`` the JSON array of its values
and ``names`` their names (:mod:`driftline.contract.labelled`: ``offline retrain`` reads both forms).

>>> packed([({"a": 1.0, "c": "x,{y}"}, True), ({"a": 2.0}, "no\\n")], LabelJson())
(b'[{"a":1.0,"c":"x,{y}"},{"a":2.0}]', b'true\\n"no\\\\n"')
>>> packed([({"a": 1.0, "c": "x},{y"}, True)], LabelJson()) is None
True
>>> cut(*packed([({"a": 1.0}, True), ({}, False), ({"b": "z"}, 3)], LabelJson()), 3)
[(b'{"a":1.0}', b'true'), (b'{}', b'false'), (b'{"b":"z"}', b'3')]
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson

from driftline.contract import labelled
from driftline.models.feature_rows import FloatBlock

#: Appends rows to the labelled stream, one entry per row (``x``, ``y``), capped near a length: ARGV = the cap,
#: ``xs``, ``ys``, the row count (see the module docstring; :func:`cut` is the same cut in Python).
APPEND_PACKED = """
local xs, ys, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
local xa, ya = 2, 1
for i = 1, n do
  local xe = #xs - 1
  if i < n then xe = string.find(xs, '},{', xa, true) end
  local ye = string.find(ys, '\\n', ya, true) or (#ys + 1)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'x', string.sub(xs, xa, xe), 'y', string.sub(ys, ya, ye - 1))
  xa, ya = xe + 2, ye + 1
end
return n
"""
#: Appends the rows of a float matrix, one entry per row (``x`` its values, ``y``, ``names``), capped near a length:
#: ARGV = the cap, the names (JSON), ``xs``, ``ys``, the row count (see the module docstring; :func:`cut_matrix`).
APPEND_MATRIX = """
local names, xs, ys, n = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local xa, ya = 2, 1
for i = 1, n do
  local xe = #xs - 1
  if i < n then xe = string.find(xs, '],[', xa, true) end
  local ye = string.find(ys, '\\n', ya, true) or (#ys + 1)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'x', string.sub(xs, xa, xe), 'y', string.sub(ys, ya, ye - 1),
    'names', names)
  xa, ya = xe + 2, ye + 1
end
return n
"""
#: Appends rows one argument a value (when :func:`packed` cannot cut them): ARGV = the cap, then x1, y1, x2, y2, ...
APPEND_ROWS = """
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'x', ARGV[i], 'y', ARGV[i + 1])
end
return (#ARGV - 1) / 2
"""
#: The label types whose JSON :class:`LabelJson` keeps (a regression's float labels are all different).
CACHED_LABELS = (bool, int, str)
#: Distinct labels :class:`LabelJson` keeps before it starts again.
MAX_CACHED_LABELS = 1024


class LabelJson:
    """The JSON of labels, each distinct bool, int or str label dumped once.

    >>> labels = LabelJson()
    >>> labels(True), labels(1), labels("1"), labels(0.5), labels(True)
    (b'true', b'1', b'"1"', b'0.5', b'true')
    """

    def __init__(self) -> None:
        self._known: dict[tuple[type, Any], bytes] = {}

    def __call__(self, y: Any) -> bytes:
        kind = type(y)
        if kind not in CACHED_LABELS:
            return orjson.dumps(y)
        key = (kind, y)
        found = self._known.get(key)
        if found is None:
            if len(self._known) >= MAX_CACHED_LABELS:
                self._known.clear()
            found = self._known[key] = orjson.dumps(y)
        return found

    def joined(self, ys: Sequence[Any]) -> bytes:
        """The JSON of each of ``ys``, joined by newlines; labels of one kind, bool, int or str (the usual), looked
        up once per distinct value.

        >>> LabelJson().joined([True, False, True]), LabelJson().joined([1, True, "a", 0.5])
        (b'true\\nfalse\\ntrue', b'1\\ntrue\\n"a"\\n0.5')
        """
        kinds = set(map(type, ys))
        if len(kinds) == 1 and kinds <= _CACHED:  # one kind: no two distinct labels are equal (True == 1)
            by_value = {y: self(y) for y in set(ys)}
            return b"\n".join(map(by_value.__getitem__, ys))
        return b"\n".join(map(self, ys))


_CACHED = set(CACHED_LABELS)


class MatrixRows:
    """Learned rows whose features are rows ``rows`` of ``block``, with their labels ``ys`` (one each).

    >>> import numpy as np
    >>> block = FloatBlock(("a", "b"), np.array([[1.0, float("nan")], [3.0, -0.0]]))
    >>> rows = MatrixRows(block, [1, 0], [True, False])
    >>> len(rows), rows.pairs(), rows.matrix().tolist()
    (2, [({'a': 3.0, 'b': -0.0}, True), ({'a': 1.0, 'b': nan}, False)], [[3.0, -0.0], [1.0, nan]])
    """

    __slots__ = ("block", "rows", "ys")

    def __init__(self, block: FloatBlock, rows: list[int], ys: list[Any]):
        self.block, self.rows, self.ys = block, rows, ys

    def __len__(self) -> int:
        return len(self.ys)

    def __getitem__(self, part: slice) -> MatrixRows:
        return MatrixRows(self.block, self.rows[part], self.ys[part])

    def pairs(self) -> list[tuple[dict[str, Any], Any]]:
        """``(x, y)`` of each row, ``x`` its feature dict."""
        names = self.block.names
        xs = self.block.matrix[self.rows].tolist()
        return [(dict(zip(names, x)), y) for x, y in zip(xs, self.ys, strict=True)]  # noqa: B905 - a value a name

    def matrix(self) -> np.ndarray:
        """The rows' values, a row each."""
        return self.block.matrix[self.rows]


#: A learned row as the learner keeps it until its checkpoint: ``(x, y)`` or many of them as :class:`MatrixRows`.
Row = tuple[dict[str, Any], Any] | MatrixRows
_JOIN, _Y, _BLOCK, _ROW = (
    operator.itemgetter(1),
    operator.itemgetter(2),
    *(operator.attrgetter(name) for name in ("block", "row")),
)


def learned_rows(learned: Sequence[tuple[Any, Any, Any]]) -> list[Row]:
    """The rows of ``learned`` (``(label, join record, y)``) as the learner keeps them: the records of one decoded
    block as :class:`MatrixRows` (a run each), the others as ``(join.x, y)``.

    >>> import numpy as np
    >>> from driftline.streams.learning_stage import JoinRecord
    >>> block = FloatBlock(("a",), np.array([[1.0], [2.0]]))
    >>> joins = [JoinRecord.of_row(True, None, 0.5, 1, 9, block, i) for i in (1, 0)]
    >>> [(type(r).__name__, len(r)) for r in learned_rows([(None, joins[0], 1), (None, joins[1], 0)])]
    [('MatrixRows', 2)]
    >>> learned_rows([(None, joins[0], 1), (None, JoinRecord({"b": 1}, 1, None, None, 1, 9), 0)])[1]
    ({'b': 1}, 0)
    """
    joins, ys = list(map(_JOIN, learned)), list(map(_Y, learned))
    blocks = list(map(_BLOCK, joins))
    if blocks and blocks[0] is not None and blocks.count(blocks[0]) == len(blocks):  # the usual: one block
        return [MatrixRows(blocks[0], list(map(_ROW, joins)), ys)]
    out: list[Row] = []
    start = 0
    for _, run in itertools.groupby(blocks, id):
        end = start + sum(1 for _ in run)
        if blocks[start] is None:
            out += [(join.x, y) for join, y in zip(joins[start:end], ys[start:end], strict=True)]
        else:
            out.append(MatrixRows(blocks[start], list(map(_ROW, joins[start:end])), ys[start:end]))
        start = end
    return out


def chunks(rows: Sequence[Row], size: int) -> Iterator[list[Row]]:
    """``rows`` in runs of at most ``size`` rows (a :class:`MatrixRows` counts its rows, cut where needed).

    >>> import numpy as np
    >>> block = FloatBlock(("a",), np.zeros((5, 1)))
    >>> [[len(r) if type(r) is MatrixRows else r for r in c]
    ...  for c in chunks([("x", 1), MatrixRows(block, [0, 1, 2, 3], [1, 2, 3, 4]), ("y", 2)], 2)]
    [[('x', 1), 1], [2], [1, ('y', 2)]]
    """
    chunk: list[Row] = []
    room = size
    for row in rows:
        if type(row) is not MatrixRows:
            chunk.append(row)
            room -= 1
        else:
            start = 0
            while start < len(row):
                part = row if start == 0 and len(row) <= room else row[start : start + room]
                chunk.append(part)
                room -= len(part)
                start += len(part)
                if room == 0 and start < len(row):
                    yield chunk
                    chunk, room = [], size
        if room == 0:
            yield chunk
            chunk, room = [], size
    if chunk:
        yield chunk


def count(rows: Sequence[Row]) -> int:
    """The number of rows of ``rows`` (a :class:`MatrixRows` counts its rows)."""
    return sum(len(row) if type(row) is MatrixRows else 1 for row in rows)


def pairs(rows: Sequence[Row]) -> list[tuple[dict[str, Any], Any]]:
    """``(x, y)`` of each row of ``rows``."""
    out: list[tuple[dict[str, Any], Any]] = []
    for row in rows:
        if type(row) is MatrixRows:
            out += row.pairs()
        else:
            out.append(row)  # type: ignore[arg-type]
    return out


def packed(rows: Sequence[tuple[dict[str, Any], Any]], labels: LabelJson) -> tuple[bytes, bytes] | None:
    """``xs`` and ``ys`` of ``rows`` for :data:`APPEND_PACKED` (see the module docstring); None when ``xs`` cannot be
    cut exactly (send the rows one argument a value)."""
    xs = orjson.dumps([x for x, _ in rows])
    if xs.count(b"},{") != len(rows) - 1:
        return None
    return xs, labels.joined([y for _, y in rows])


def matrix_packed(rows: Sequence[MatrixRows], labels: LabelJson) -> tuple[bytes, bytes, bytes]:
    """``names``, ``xs`` and ``ys`` of ``rows`` (all of one layout) for :data:`APPEND_MATRIX`.

    >>> import numpy as np
    >>> block = FloatBlock(("a", "b"), np.array([[1.0, float("inf")], [3.0, -0.0]]))
    >>> payload = matrix_packed([MatrixRows(block, [1], [True]), MatrixRows(block, [0], ["no"])], LabelJson())
    >>> payload, cut_matrix(*payload, 2)
    ((b'["a","b"]', b'[[3.0,-0.0],[1.0,null]]', b'true\\n"no"'), [(b'[3.0,-0.0]', b'true'), (b'[1.0,null]', b'"no"')])
    """
    matrices = [row.matrix() for row in rows]
    matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
    ys = rows[0].ys if len(rows) == 1 else [y for row in rows for y in row.ys]
    return orjson.dumps(rows[0].block.names), orjson.dumps(matrix.tolist()), labels.joined(ys)


def appends(rows: Sequence[Row], labels: LabelJson, size: int) -> Iterator[tuple[str, list[Any]]]:
    """The script and its arguments after the cap (ARGV[2:]) of each call that appends ``rows`` to the labelled
    stream in order, at most ``size`` rows a call: :data:`APPEND_MATRIX` for runs of :class:`MatrixRows` of one
    layout, :data:`APPEND_PACKED` (or :data:`APPEND_ROWS` when it cannot cut them) for the others."""
    for chunk in chunks(rows, size):
        for names, run in itertools.groupby(chunk, _layout):
            part = list(run)
            if names is not None:
                yield APPEND_MATRIX, [*matrix_packed(part, labels), count(part)]
                continue
            payload = packed(part, labels)  # type: ignore[arg-type]
            if payload is not None:
                yield APPEND_PACKED, [*payload, len(part)]
            else:
                yield APPEND_ROWS, [a for x, y in part for a in (orjson.dumps(x), labels(y))]  # type: ignore[misc]


def _layout(row: Row) -> tuple[str, ...] | None:
    return row.block.names if type(row) is MatrixRows else None


def entries(script: str, args: Sequence[Any]) -> list[dict[bytes, bytes]]:
    """The fields of the entries ``script`` appends with ``args`` (after the cap), cut as the script cuts them."""
    if script == APPEND_MATRIX:
        names, xs, ys, n = args
        return [{labelled.X: x, labelled.Y: y, labelled.NAMES: names} for x, y in cut_matrix(names, xs, ys, n)]
    if script == APPEND_PACKED:
        return [{labelled.X: x, labelled.Y: y} for x, y in cut(*args)]
    return [{labelled.X: x, labelled.Y: y} for x, y in zip(args[::2], args[1::2], strict=True)]


def cut_matrix(names: bytes, xs: bytes, ys: bytes, n: int) -> list[tuple[bytes, bytes]]:
    """The ``(x, y)`` JSON of each of the ``n`` rows of :func:`matrix_packed`, cut as :data:`APPEND_MATRIX` does."""
    return cut(xs, ys, n, b"],[")


def cut(xs: bytes, ys: bytes, n: int, between: bytes = b"},{") -> list[tuple[bytes, bytes]]:
    """The ``(x, y)`` JSON of each of the ``n`` rows of :func:`packed`, cut as :data:`APPEND_PACKED` cuts them
    (``between``: what separates two rows' JSON in ``xs``; :func:`cut_matrix`'s ``],[``)."""
    out, xa, ya = [], 1, 0
    for i in range(n):
        xe = xs.find(between, xa) + 1 if i < n - 1 else len(xs) - 1
        ye = ys.find(b"\n", ya)
        ye = len(ys) if ye == -1 else ye
        out.append((xs[xa:xe], ys[ya:ye]))
        xa, ya = xe + 1, ye + 1
    return out
