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

The entries are byte for byte those of one ``orjson.dumps`` a value, so ``offline retrain`` reads old and new alike.

>>> packed([({"a": 1.0, "c": "x,{y}"}, True), ({"a": 2.0}, "no\\n")], LabelJson())
(b'[{"a":1.0,"c":"x,{y}"},{"a":2.0}]', b'true\\n"no\\\\n"')
>>> packed([({"a": 1.0, "c": "x},{y"}, True)], LabelJson()) is None
True
>>> cut(*packed([({"a": 1.0}, True), ({}, False), ({"b": "z"}, 3)], LabelJson()), 3)
[(b'{"a":1.0}', b'true'), (b'{}', b'false'), (b'{"b":"z"}', b'3')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

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


def packed(rows: Sequence[tuple[dict[str, Any], Any]], labels: LabelJson) -> tuple[bytes, bytes] | None:
    """``xs`` and ``ys`` of ``rows`` for :data:`APPEND_PACKED` (see the module docstring); None when ``xs`` cannot be
    cut exactly (send the rows one argument a value)."""
    xs = orjson.dumps([x for x, _ in rows])
    if xs.count(b"},{") != len(rows) - 1:
        return None
    return xs, b"\n".join([labels(y) for _, y in rows])


def cut(xs: bytes, ys: bytes, n: int) -> list[tuple[bytes, bytes]]:
    """The ``(x, y)`` JSON of each of the ``n`` rows of :func:`packed`, cut as :data:`APPEND_PACKED` cuts them."""
    out, xa, ya = [], 1, 0
    for i in range(n):
        xe = xs.find(b"},{", xa) + 1 if i < n - 1 else len(xs) - 1
        ye = ys.find(b"\n", ya)
        ye = len(ys) if ye == -1 else ye
        out.append((xs[xa:xe], ys[ya:ye]))
        xa, ya = xe + 1, ye + 1
    return out
