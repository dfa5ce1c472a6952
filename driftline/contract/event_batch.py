"""A batch of raw ``events`` messages decoded once, into columns (event ids, timestamps, models, features).

Each message is decoded once with orjson and checked against the :class:`~driftline.contract.records.Event`
contract by plain type and range tests. A message those tests cannot vouch for (anything unusual: not an object,
fields other than the event's (ignored, but pydantic allows less nesting than orjson), a float or ISO timestamp,
a timestamp outside ``ts_bounds``, a model name outside :data:`MODEL_NAME_PATTERN`, a nested feature value, bytes
orjson refuses) is decided by :func:`parse_event` itself, so every message is accepted or rejected, with the same
stage, error class and reason, exactly as one at a time. An exception :func:`parse_event` did not anticipate is
the message's error too (the caller dead-letters it as ``unexpected``).

One difference remains, by design: orjson reads an integer literal of 2**64 or more (or below -2**63) as a float
where the contract keeps an int; such feature values are re-read with :func:`parse_event` by the feature columns
(:mod:`driftline.models.feature_columns`), where the difference could matter.

>>> batch = decode_events([b'{"event_id": "e1", "ts": 5, "features": {"x": 1}}', b'{"event_id": ""}', None])
>>> batch.rows, batch.event_ids, batch.ts, batch.models, batch.features
([0], ['e1'], [5], [None], [{'x': 1}])
>>> [(i, e.stage, e.error_class) for i, e in batch.errors]
[(1, 'validate', 'ValidationError'), (2, 'deserialize', 'EmptyMessage')]
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from driftline.contract.records import ANY_TS, MODEL_NAME_PATTERN, parse_event

#: Feature value types the contract allows (anything else, e.g. a list or an object, is rejected).
SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


@dataclass
class EventColumns:
    """The decoded batch: for the accepted messages (positions ``rows`` in the batch), their fields as columns;
    for the others, ``(position, error)``: a :class:`RecordError`, or the exception no check anticipated."""

    rows: list[int] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    models: list[str | None] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, Exception]] = field(default_factory=list)


Accepted = tuple[int, str, int, "str | None", dict[str, Any]]


def _fast(row: int, raw: bytes | None, max_bytes: int, low: int, high: int, value: Any = None) -> Accepted | None:
    """The fields of a plainly valid message (``value``: ``raw`` already decoded by orjson, if not None), or None
    when :func:`parse_event` must decide."""
    if raw is None or len(raw) > max_bytes:
        return None
    try:
        record = orjson.loads(raw) if value is None else value
        event_id, ts, features, model = record["event_id"], record["ts"], record["features"], record.get("model")
    except Exception:  # noqa: BLE001 - anything unusual is decided by parse_event
        return None
    if (
        len(record) != 3 + ("model" in record)
        or type(event_id) is not str
        or not 0 < len(event_id) <= 256
        or type(ts) is not int
        or not low <= ts <= high
        or type(features) is not dict
        or (model is not None and (type(model) is not str or not MODEL_NAME_PATTERN.fullmatch(model)))
    ):
        return None
    return row, event_id, ts, model, features


#: The three fields of an event without a model, read from each decoded message at once.
_EVENT_ID, _TS, _FEATURES = (operator.itemgetter(key) for key in ("event_id", "ts", "features"))


def _plain_batch(
    raws: Sequence[bytes | None], max_bytes: int, low: int, high: int, values: Sequence[Any] | None
) -> EventColumns | None:
    """The batch when every message is plainly valid and names no model (the common batch): :func:`_fast`'s tests
    on whole columns, each a C-level pass instead of a call per message; None when any message needs more (then
    each is decided alone, with the same outcome for these).

    >>> raws = [b'{"event_id": "a", "ts": 5, "features": {"x": 1}}', b'{"event_id": "b", "ts": 6, "features": {}}']
    >>> batch = _plain_batch(raws, 100, 0, 10, None)
    >>> batch.rows, batch.event_ids, batch.ts, batch.models, batch.features, batch.errors
    ([0, 1], ['a', 'b'], [5, 6], [None, None], [{'x': 1}, {}], [])
    >>> _plain_batch(raws, 100, 0, 5, None), _plain_batch(raws, 40, 0, 10, None), _plain_batch([], 100, 0, 10, None)
    (None, None, None)
    """
    n = len(raws)
    try:
        if not n or max(map(len, raws)) > max_bytes:  # len(None): TypeError
            return None
        if values is None or None in values:
            values = [orjson.loads(raw) for raw in raws]
        if set(map(type, values)) != {dict} or set(map(len, values)) != {3}:
            return None
        event_ids, ts, features = (list(map(field, values)) for field in (_EVENT_ID, _TS, _FEATURES))
    except Exception:  # noqa: BLE001 - not JSON, or not these three fields: decided message by message
        return None
    if (
        set(map(type, event_ids)) != {str}
        or min(map(len, event_ids)) == 0
        or max(map(len, event_ids)) > 256
        or set(map(type, ts)) != {int}
        or min(ts) < low
        or max(ts) > high
        or set(map(type, features)) != {dict}
        or not set(map(type, itertools.chain.from_iterable(map(dict.values, features)))) <= SCALAR_TYPES
    ):
        return None
    return EventColumns(list(range(n)), event_ids, ts, [None] * n, features)


def decode_events(
    raws: Sequence[bytes | None],
    max_bytes: int = 65_536,
    ts_bounds: tuple[int, int] = ANY_TS,
    values: Sequence[Any] | None = None,
) -> EventColumns:
    """Decode and validate a batch of raw ``events`` messages; see the module docstring. ``values``: the messages
    already decoded by ``orjson.loads`` where known (None where not, e.g. by the merge that ordered them by ts),
    so that no message is decoded twice; they must not have been changed since."""
    low, high = ts_bounds
    plain = _plain_batch(raws, max_bytes, low, high, values)
    if plain is not None:
        return plain
    each = [None] * len(raws) if values is None else values
    decoded = [_fast(row, raw, max_bytes, low, high, v) for row, (raw, v) in enumerate(zip(raws, each, strict=True))]
    accepted: list[Accepted] = [fields for fields in decoded if fields is not None]
    slow = [row for row, fields in enumerate(decoded) if fields is None] if len(accepted) < len(raws) else []
    # one pass over every feature value of the batch; only a batch with a nested value looks row by row
    if not set(map(type, itertools.chain.from_iterable(a[4].values() for a in accepted))) <= SCALAR_TYPES:
        slow += [a[0] for a in accepted if not set(map(type, a[4].values())) <= SCALAR_TYPES]
        accepted = [a for a in accepted if set(map(type, a[4].values())) <= SCALAR_TYPES]
    errors: list[tuple[int, Exception]] = []
    for row in sorted(slow):
        try:
            event = parse_event(raws[row], max_bytes, ts_bounds)
        except Exception as exc:  # noqa: BLE001 - a RecordError, or what no check anticipated: this message's error
            errors.append((row, exc))
            continue
        accepted.append((row, event.event_id, event.ts, event.model, dict(event.features)))
    if slow:
        accepted.sort(key=lambda a: a[0])
    if not accepted:
        return EventColumns(errors=errors)
    rows, event_ids, ts, models, features = map(list, zip(*accepted, strict=True))
    return EventColumns(rows, event_ids, ts, models, features, errors)  # type: ignore[arg-type]
