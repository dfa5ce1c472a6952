"""The entries of the labelled stream ``{prefix}labelled:{model}``: one learned row each, for ``offline retrain``.

An entry holds the row's label as JSON in ``y`` and its features in one of two forms:

- ``x`` a JSON object, ``{"name": value, ...}`` (any row; every entry written before the matrix form);
- ``x`` a JSON array of the values, ``[value, ...]``, and ``names`` the JSON array of their feature names, in the
  same order (rows whose features are all floats, written from the learner's float matrix: NaN and infinities are
  ``null``, as in the object form).

Both read back as the same feature dict (:func:`features`).

>>> features({b"x": b'{"a": 1.0, "c": "red"}', b"y": b"true"})
{'a': 1.0, 'c': 'red'}
>>> features({b"x": b"[1.0,null]", b"y": b"true", b"names": b'["a","b"]'})
{'a': 1.0, 'b': None}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

#: The fields of an entry: features, label, and the feature names of an ``x`` written as an array.
X, Y, NAMES = b"x", b"y", b"names"


def features(fields: Mapping[bytes, bytes], known: dict[bytes, list[str]] | None = None) -> dict[str, Any]:
    """The feature dict of one entry's ``fields`` (either form); ``known``: names already parsed, by their JSON
    (entries of one layout share it)."""
    x = orjson.loads(fields[X])
    names = fields.get(NAMES)
    if names is None:
        return x
    if known is None:
        return dict(zip(orjson.loads(names), x, strict=True))
    keys = known.get(names)
    if keys is None:
        keys = known[names] = orjson.loads(names)
    return dict(zip(keys, x, strict=True))
