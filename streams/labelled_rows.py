"""The rows a checkpoint learned as blocks of the labelled stream: one ``XADD`` a block, the stream capped in rows.

The learner keeps the rows it learned until its checkpoint (:data:`Row`): the rows of a batch decoded at once as
:class:`MatrixRows` (rows of its float matrix and their labels: no feature dict is built for them), the others as
``(features, label)``. The checkpoint writes them in order as blocks (:func:`blocks`; the entry forms are
:mod:`driftline.contract.labelled`'s), each a run of rows of one layout, at most ``size`` rows:

- a run of :class:`MatrixRows`: ``xs`` ONE ``orjson.dumps`` of the rows of the matrix (NaN and infinities ``null``)
  beside ``names``;
- a run of the others: ``xs`` ONE ``orjson.dumps`` of the list of their feature dicts;
- and ``ys`` ONE ``orjson.dumps`` of the list of labels, ``n`` the row count.

Redis's cost is then one ``XADD`` of a few hundred kB a block (a row cost it ~2.4 us of scripted ``XADD`` when
each row was its own entry, and each matrix row repeated its ``names``). :func:`queue` queues the blocks and
:data:`KEEP_ROWS`, the cap in rows, on the checkpoint's transaction: a row is in the stream iff its checkpoint is.

>>> import numpy as np
>>> block = FloatBlock(("a", "b"), np.array([[1.0, float("inf")], [3.0, -0.0]]))
>>> [dict(sorted(b.items())) for b in blocks([MatrixRows(block, [1, 0], [True, "no"]), ({"c": "x"}, 2)], 1000)]
... # doctest: +NORMALIZE_WHITESPACE
[{b'n': 2, b'names': b'["a","b"]', b'xs': b'[[3.0,-0.0],[1.0,null]]', b'ys': b'[true,"no"]'},
 {b'n': 1, b'xs': b'[{"c":"x"}]', b'ys': b'[2]'}]
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

#: Keeps the labelled stream near a number of ROWS: run in the checkpoint's transaction BEFORE its blocks are
#: appended. KEYS = the stream, its row counter (same hash tag); ARGV = the cap, the rows about to be appended.
#: The counter (rows the stream holds) grows by them, then the oldest entries are dropped whole (one ``XTRIM
#: MINID``) while the rows after the oldest still reach the cap. So the stream holds at least ``cap`` rows once that
#: many were written, and fewer than ``cap`` + the oldest entry's rows (a block's ``size`` at most), except right
#: after a checkpoint that alone wrote more than the cap (its own rows are never dropped by it). A missing counter
#: (or not a number) is recounted (``XLEN`` when the newest entry is a one-row entry, written before blocks: so are
#: all; else entry by entry); one that counts more rows than the stream holds (the stream deleted by hand) starts
#: again from the new rows. Returns the rows held with the new ones. Redis 6.2 or later (``XTRIM MINID``, exclusive
#: ``XRANGE`` starts). A script error would not undo the transaction's other commands (its blocks would be appended,
#: and appended again with the next checkpoint): hence a counter that is no number is recounted, not an error.
KEEP_ROWS = """
local stream, counter, cap, added = KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2])
local function size(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'n' then return tonumber(fields[i + 1]), true end
  end
  return 1, false
end
local function walk(visit)
  local start, step = '-', 1
  while true do
    local page = redis.call('XRANGE', stream, start, '+', 'COUNT', step)
    if #page == 0 then return nil end
    for _, entry in ipairs(page) do
      local n, block = size(entry)
      if not visit(n) then return entry[1] end
      if block then step = 1 else step = 100 end
    end
    start = '(' .. page[#page][1]
  end
end
local held = tonumber(redis.call('GET', counter))
if not held then
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  local _, block = 1, false
  if #newest > 0 then _, block = size(newest[1]) end
  if block then
    held = 0
    walk(function(n) held = held + n return true end)
  else
    held = redis.call('XLEN', stream)
  end
end
held = held + added
local seen = 0
local first = walk(function(n)
  if held - n < cap then return false end
  held, seen = held - n, seen + n
  return true
end)
if first then
  redis.call('XTRIM', stream, 'MINID', first)
else
  if seen > 0 then redis.call('XTRIM', stream, 'MAXLEN', 0) end
  held = added
end
redis.call('SET', counter, held)
return held
"""


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
    >>> joins = JoinRecord.of_rows([True, True], [0.5, 0.5], [1, 1], [9, 9], block)[::-1]
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


def blocks(rows: Sequence[Row], size: int) -> Iterator[dict[bytes, Any]]:
    """The fields of each block that holds ``rows`` in order (see the module docstring): a run of rows of one
    layout, at most ``size`` rows."""
    for chunk in chunks(rows, size):
        for names, run in itertools.groupby(chunk, _layout):
            part = list(run)
            if names is None:
                xs, ys = [x for x, _ in part], [y for _, y in part]  # type: ignore[misc]
                yield {labelled.N: len(part), labelled.XS: orjson.dumps(xs), labelled.YS: orjson.dumps(ys)}
            else:
                yield _matrix_block(part)  # type: ignore[arg-type]


def _matrix_block(rows: Sequence[MatrixRows]) -> dict[bytes, Any]:
    """The block of ``rows``, all of one layout: the matrix's rows dumped at once beside their names."""
    matrices = [row.matrix() for row in rows]
    matrix = np.ascontiguousarray(matrices[0] if len(matrices) == 1 else np.concatenate(matrices), dtype=np.float64)
    ys = rows[0].ys if len(rows) == 1 else [y for row in rows for y in row.ys]
    return {
        labelled.N: len(ys),
        labelled.XS: orjson.dumps(matrix, option=orjson.OPT_SERIALIZE_NUMPY),  # the bytes of matrix.tolist()'s
        labelled.YS: orjson.dumps(ys),
        labelled.NAMES: orjson.dumps(rows[0].block.names),
    }


def _layout(row: Row) -> tuple[str, ...] | None:
    return row.block.names if type(row) is MatrixRows else None


def queue(pipe: Any, stream: str, counter: str, rows: Sequence[Row], cap: int, size: int) -> None:
    """Queue on the transaction ``pipe`` (redis-py's) what appends ``rows`` to the labelled ``stream`` (row count
    in ``counter``, a key of the same hash tag), capped near ``cap`` rows: :data:`KEEP_ROWS`, then one ``XADD`` a
    block of at most ``size`` rows (nothing when ``rows`` is empty)."""
    if not rows:
        return
    pipe.eval(KEEP_ROWS, 2, stream, counter, cap, count(rows))
    for fields in blocks(rows, size):
        pipe.xadd(stream, fields)
