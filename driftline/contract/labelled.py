"""The entries of the labelled stream ``{prefix}labelled:{model}``: the rows the learner learned, for ``offline
retrain``.

An entry is a *block* of rows (what the learner writes) or one row (what it wrote before blocks; a deployment's
stream may still hold such entries, older than every block):

- a block: ``n`` the row count (ASCII), ``ys`` the JSON array of their labels, and ``xs`` their features, either a
  JSON array of feature objects, ``[{"name": value, ...}, ...]`` (any rows), or a JSON array of value arrays,
  ``[[value, ...], ...]``, beside ``names``, the JSON array of the feature names in the same order (rows whose
  features are all floats, written from the learner's float matrix);
- one row: ``y`` its label's JSON and ``x`` its features, a JSON object, or a JSON array of the values beside
  ``names``.

NaN and infinities are ``null`` in every form. Every form reads back as ``(feature dict, label)`` rows
(:func:`rows`); :func:`read_rows` reads the newest rows of a stream whatever its entries, and is how anything counts
the rows a stream holds (an entry is not a row).

>>> rows({b"x": b'{"a": 1.0, "c": "red"}', b"y": b"true"})
[({'a': 1.0, 'c': 'red'}, True)]
>>> rows({b"x": b"[1.0,null]", b"y": b"true", b"names": b'["a","b"]'})
[({'a': 1.0, 'b': None}, True)]
>>> rows({b"n": b"2", b"xs": b"[[1.0,2.0],[3.0,null]]", b"ys": b'[true,"no"]', b"names": b'["a","b"]'})
[({'a': 1.0, 'b': 2.0}, True), ({'a': 3.0, 'b': None}, 'no')]
>>> rows({b"n": b"2", b"xs": b'[{"a":1.0},{"c":"red"}]', b"ys": b"[0,1]"}), size({b"n": b"2"}), size({b"x": b"{}"})
([({'a': 1.0}, 0), ({'c': 'red'}, 1)], 2, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import orjson

#: The fields of a one-row entry: its features, its label, and the feature names of an ``x`` written as an array.
X, Y, NAMES = b"x", b"y", b"names"
#: The fields of a block: the row count, the rows' features and their labels (and ``names`` beside arrays).
N, XS, YS = b"n", b"xs", b"ys"
#: Entries :func:`read_rows` asks for at most in one ``XREVRANGE``.
MAX_PAGE = 1000
#: Rows :func:`read_rows` aims at a page when it reads a whole stream.
PAGE_ROWS = 20_000

Row = tuple[dict[str, Any], Any]


class StreamReader(Protocol):
    """What :func:`read_rows` needs of a Redis client (redis-py's, synchronous)."""

    def xrevrange(self, name: str, max: str = "+", min: str = "-", count: int | None = None) -> Any: ...


def size(fields: Mapping[bytes, bytes]) -> int:
    """The number of rows of one entry's ``fields`` (a block's ``n``; 1 for a one-row entry)."""
    n = fields.get(N)
    return 1 if n is None else int(n)


def rows(fields: Mapping[bytes, bytes], known: dict[bytes, list[str]] | None = None) -> list[Row]:
    """The ``(features, label)`` rows of one entry's ``fields`` (any form), in order; ``known``: feature names
    already parsed, by their JSON (entries of one layout share it)."""
    if N not in fields:
        return [(features(fields, known), orjson.loads(fields[Y]))]
    xs, ys = orjson.loads(fields[XS]), orjson.loads(fields[YS])
    if len(xs) != len(ys) or len(ys) != int(fields[N]):
        raise ValueError(f"a block of {int(fields[N])} rows holds {len(xs)} features and {len(ys)} labels")
    names = fields.get(NAMES)
    if names is None:
        return list(zip(xs, ys, strict=True))
    keys = _names(names, known)
    return [(dict(zip(keys, x, strict=True)), y) for x, y in zip(xs, ys, strict=True)]


def features(fields: Mapping[bytes, bytes], known: dict[bytes, list[str]] | None = None) -> dict[str, Any]:
    """The feature dict of one one-row entry's ``fields`` (either form of ``x``)."""
    x = orjson.loads(fields[X])
    names = fields.get(NAMES)
    if names is None:
        return x
    return dict(zip(_names(names, known), x, strict=True))


def _names(names: bytes, known: dict[bytes, list[str]] | None) -> list[str]:
    if known is None:
        return orjson.loads(names)
    keys = known.get(names)
    if keys is None:
        keys = known[names] = orjson.loads(names)
    return keys


def read_rows(client: StreamReader, key: str, since_ms: int = 0, max_rows: int | None = None) -> list[Row]:
    """The newest ``max_rows`` rows (every row when None) of the labelled stream ``key`` written at or after
    ``since_ms`` (epoch ms), oldest first, whatever its entries: of a block that straddles the limit only its newest
    rows are taken. Read newest first, a page of entries at a time (sized by the rows an entry held so far)."""
    known: dict[bytes, list[str]] = {}
    parts: list[list[Row]] = []  # newest first
    got = entries = 0
    top, count = "+", 1
    while max_rows is None or got < max_rows:
        page = client.xrevrange(key, max=top, min=f"{since_ms}-0", count=count)
        for _, fields in page:
            part = rows(fields, known)
            if max_rows is not None and got + len(part) > max_rows:
                part = part[len(part) - (max_rows - got) :]
            parts.append(part)
            got += len(part)
            if max_rows is not None and got >= max_rows:
                break
        if len(page) < count:
            break
        entries += len(page)
        top = "(" + _text(page[-1][0])
        wanted = PAGE_ROWS if max_rows is None else max_rows - got
        count = max(1, min(MAX_PAGE, -(-wanted * entries // max(got, 1))))
    return [row for part in reversed(parts) for row in part]


def _text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
