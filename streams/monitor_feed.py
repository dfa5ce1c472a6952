"""The scorer's feed of a model's monitor: one compact columnar message per scored batch and model.

Each worker's scorer hands what a batch gives the monitor (event ids, event times, source partition and offset,
the prepared feature columns, predictions, probabilities, the served version, and the events that failed
validation) to the ``monitor`` topic, keyed by model, with its progress per owned ``events`` partition: the event
time handed over up to, and the offset handed over up to (the merger compares it with the partition's end offset:
a scorer level with the end of its partition is not waited for). One consumer per model
merges the feeds in event-time order (:mod:`driftline.streams.feed_merge`). The wire format is data, never
pickle (format 2): :data:`MAGIC`, the length of an orjson header (model, version, event ids, feature names,
categorical columns, predictions, classes, invalid events, progress), the header, then the numbers as
little-endian arrays: source partitions, offsets and event times (int64), the numeric feature columns and, when
every event has a probability for each class, the probability matrix (float64, row-major). Numbers are neither
written nor parsed as text (orjson's float formatting and parsing were most of the feed's cost: 1.9 us an
event to decode, 0.9 to encode). Format 1, an orjson object with every number in JSON arrays (a worker of an
earlier version writes it), is still read; both decode to the same batch (infinities read as NaN, as JSON's
null does). :func:`decode_feed` raises :class:`FeedError` with a reason on anything else (the consumer
dead-letters such a message).

Pure: no Kafka.

>>> import numpy as np
>>> from driftline.models.feature_columns import FeatureColumns
>>> columns = FeatureColumns(["x", "c"], {"x": np.array([1.5, np.nan])}, {"c": ["a", None]}, [0, 1])
>>> batch = FeedBatch("m", 3, [0, 2], [10, 4], [1000, 1001], ["e1", "e2"], columns, [True, False],
...                   [{True: 0.9, False: 0.1}, None], invalid=[(1, 7, "ValidationError")], progress={0: (1000, 11)})
>>> [decoded] = [decode_feed(raw) for raw in encode_feed(batch)]
>>> decoded.columns.rows(), decoded.probabilities, decoded.progress, decoded.invalid
([{'x': 1.5, 'c': 'a'}, {}], [{True: 0.9, False: 0.1}, None], {0: (1000, 11)}, [(1, 7, 'ValidationError')])
>>> encode_feed(batch)[0][:4], decode_feed(encode_feed(batch, feed_format=1)[0]).columns.rows()[0]
(b'DLF2', {'x': 1.5, 'c': 'a'})
>>> decode_feed(b'{"feed": 1, "model": 7, "version": 1}')
Traceback (most recent call last):
...
driftline.streams.monitor_feed.FeedError: not a monitor feed message: TypeError: model must be a str
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from driftline.models.feature_columns import FeatureColumns
from driftline.models.probability_rows import ProbabilityRows

__all__ = ["FEED_FORMAT", "MAGIC", "MAX_FEED_ROWS", "FeedBatch", "FeedError", "decode_feed", "encode_feed"]

#: The format written (a consumer reads it and format 1, and refuses any other).
FEED_FORMAT = 2
#: The first bytes of a format-2 message (a format-1 message is a JSON object: it starts with ``{``).
MAGIC = b"DLF2"
#: MAGIC and the header's length in bytes.
_PREFIX = struct.Struct("<4sI")
_INT, _FLOAT = np.dtype("<i8"), np.dtype("<f8")
#: Events per message at most (a batch of more is split: every message stays far below the broker's size limit).
MAX_FEED_ROWS = 1000
#: The source partition of events scored outside ``events`` (the HTTP API): never waited for, never deduplicated.
DIRECT = -1
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class FeedError(ValueError):
    """A ``monitor`` message that is not a feed message this version reads (the reason says why)."""


@dataclass
class FeedBatch:
    """One model's share of a scored batch, and the scorer's progress (see the module docstring).

    ``progress``: events partition -> (event time handed over up to, offset after the last record handed over).
    ``invalid``: (partition, offset, error class) of the events that failed validation (the data-quality monitor
    counts them; they go to the default model's feed).
    """

    model: str
    version: int | None
    partitions: Sequence[int]
    offsets: Sequence[int]
    ts: Sequence[int]
    event_ids: list[str]
    columns: FeatureColumns
    predictions: list[Any]
    probabilities: Sequence[dict[Any, float] | None]  # decoded: ProbabilityRows when every event has every class
    invalid: list[tuple[int, int, str]] = field(default_factory=list)
    progress: dict[int, tuple[int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_ids)

    @classmethod
    def progress_only(
        cls, model: str, progress: dict[int, tuple[int, int]], invalid: list[tuple[int, int, str]] | None = None
    ) -> FeedBatch:
        """A message without events: the scorer's progress (and invalid events) alone."""
        return cls(model, None, [], [], [], [], FeatureColumns([], {}, {}, []), [], [], invalid or [], progress)


def encode_feed(batch: FeedBatch, max_rows: int = MAX_FEED_ROWS, feed_format: int = FEED_FORMAT) -> list[bytes]:
    """The messages of ``batch``: ``max_rows`` events each at most; the invalid events and the progress go with
    the last (a consumer never hears of progress before it has the events handed over up to then).
    ``feed_format`` 1 writes what a worker of an earlier version wrote (its readers refuse format 2)."""
    n = len(batch)
    parts = [(a, min(n, a + max_rows)) for a in range(0, n, max_rows)] or [(0, 0)]
    out = []
    for k, (a, b) in enumerate(parts):
        last = k == len(parts) - 1
        if feed_format == 1:
            out.append(orjson.dumps(_message(batch, a, b, last), option=_OPTIONS))
        else:
            out.append(_packed(batch, a, b, last))
    return out


def _packed(batch: FeedBatch, a: int, b: int, last: bool) -> bytes:
    """A format-2 message of the events ``a:b`` of ``batch`` (see the module docstring)."""
    columns = batch.columns
    classes, matrix = _probability_matrix(batch.probabilities[a:b])
    proba = None if matrix is not None else _probability_rows(batch.probabilities[a:b])[1]
    numeric = list(columns.numeric)
    arrays = [
        np.asarray(batch.partitions[a:b], dtype=np.int64),
        np.asarray(batch.offsets[a:b], dtype=np.int64),
        np.asarray(batch.ts[a:b], dtype=np.int64),
    ]
    arrays += [np.asarray(columns.numeric[name][a:b], dtype=np.float64) for name in numeric]
    if matrix is not None:
        arrays.append(matrix)
    header = orjson.dumps(
        {
            "feed": 2,
            "model": batch.model,
            "version": batch.version,
            "id": batch.event_ids[a:b],
            "names": columns.names,
            "numeric": numeric,
            "categorical": {name: column[a:b] for name, column in columns.categorical.items()},
            "prediction": batch.predictions[a:b],
            "classes": classes,
            "proba": proba,
            "invalid": batch.invalid if last else [],
            "progress": [[p, ts, offset] for p, (ts, offset) in batch.progress.items()] if last else [],
        },
        option=_OPTIONS,
    )
    body = b"".join(
        array.astype(_INT if array.dtype.kind in "iu" else _FLOAT, copy=False).tobytes() for array in arrays
    )
    return _PREFIX.pack(MAGIC, len(header)) + header + body


def _message(batch: FeedBatch, a: int, b: int, last: bool) -> dict[str, Any]:
    columns = batch.columns
    classes, proba, dense = _probability_rows(batch.probabilities[a:b])
    return {
        "feed": 1,
        "model": batch.model,
        "version": batch.version,
        "partition": np.asarray(batch.partitions[a:b], dtype=np.int64),
        "offset": np.asarray(batch.offsets[a:b], dtype=np.int64),
        "ts": np.asarray(batch.ts[a:b], dtype=np.int64),
        "id": batch.event_ids[a:b],
        "names": columns.names,
        "numeric": {name: column[a:b] for name, column in columns.numeric.items()},
        "categorical": {name: column[a:b] for name, column in columns.categorical.items()},
        "prediction": batch.predictions[a:b],
        "classes": classes,
        "proba": proba,
        "dense": dense,
        "invalid": batch.invalid if last else [],
        "progress": [[p, ts, offset] for p, (ts, offset) in batch.progress.items()] if last else [],
    }


def _probability_matrix(probabilities: Sequence[dict[Any, float] | None]) -> tuple[list[Any], np.ndarray | None]:
    """The classes and, when every event has a number for exactly those classes (more than one), the matrix of
    them, one row per event, gathered a class at a time in C (else None: the rows go as :func:`_probability_rows`
    gives them)."""
    if isinstance(probabilities, ProbabilityRows):
        if len(probabilities.classes) > 1:
            return probabilities.classes, probabilities.matrix.astype(np.float64, copy=False)
        probabilities = list(probabilities)
    first = next((p for p in probabilities if p), None)
    classes = list(first) if first else []
    n = len(probabilities)
    if len(classes) < 2 or None in probabilities or set(map(len, probabilities)) != {len(classes)}:
        return _probability_rows(probabilities)[0], None
    matrix = np.empty((n, len(classes)), dtype=np.float64)
    try:
        for j, c in enumerate(classes):
            values = list(map(operator.itemgetter(c), probabilities))
            if not set(map(type, values)) <= {float, int}:  # anything else reads as format 1 reads it
                raise TypeError("not a number")
            matrix[:, j] = values
    except (KeyError, TypeError, OverflowError):  # another class in some row, or not numbers
        return _probability_rows(probabilities)[0], None
    return classes, matrix


def _probability_rows(probabilities: Sequence[dict[Any, float] | None]) -> tuple[list[Any], list[Any], bool]:
    """The classes, one row of probabilities per event (None for an event without), and whether every event has
    exactly those classes (then one C-level pass each way)."""
    first = next((p for p in probabilities if p), None)
    classes = list(first) if first else []
    if len(classes) > 1 and None not in probabilities and set(map(len, probabilities)) == {len(classes)}:
        try:
            return classes, list(map(operator.itemgetter(*classes), probabilities)), True
        except (KeyError, TypeError):  # another class in some row
            pass
    seen = set(classes)
    for p in probabilities:
        for c in p or ():
            if c not in seen:
                seen.add(c)
                classes.append(c)
    return classes, [None if p is None else [p.get(c) for c in classes] for p in probabilities], False


def decode_feed(raw: bytes | None) -> FeedBatch:
    """The :class:`FeedBatch` of one message; :class:`FeedError` with the reason for anything else."""
    try:
        if raw is not None and raw[:4] == MAGIC:
            return _unpack(raw)
        return _decode(orjson.loads(raw if raw is not None else b""))
    except FeedError:
        raise
    except Exception as exc:  # noqa: BLE001 - any bytes a producer can send
        raise FeedError(f"not a monitor feed message: {type(exc).__name__}: {exc}") from exc


def _decode(value: Any) -> FeedBatch:
    if not isinstance(value, dict):
        raise TypeError("not a JSON object")
    if value.get("feed") != 1:
        raise FeedError(f"monitor feed format {value.get('feed')!r}, this worker reads 1 and {FEED_FORMAT}")
    model, version, ids = _identity(value)
    n = len(ids)
    partitions, offsets, ts = (_ints(value[k], n, k) for k in ("partition", "offset", "ts"))
    names = value["names"]
    numeric = {str(k): np.array(v, dtype=np.float64) for k, v in value["numeric"].items()}
    if any(c.shape != (n,) for c in numeric.values()):
        raise ValueError("a feature column has not one value per event")
    categorical = _categorical(value, names, numeric, n)
    predictions, classes, proba = value["prediction"], value["classes"], value["proba"]
    if len(predictions) != n or len(proba) != n:
        raise ValueError("predictions and probabilities must have one entry per event")
    probabilities = _dense(classes, proba, n) if value.get("dense") is True else None
    if probabilities is None:
        probabilities = [None if row is None else _probabilities(classes, row) for row in proba]
    invalid = [(int(p), int(o), str(reason)) for p, o, reason in value["invalid"]]
    progress = {int(p): (int(t), int(offset)) for p, t, offset in value["progress"]}
    columns = FeatureColumns(list(names), numeric, categorical, list(range(n)))
    return FeedBatch(
        model, version, partitions, offsets, ts, ids, columns, predictions, probabilities, invalid, progress
    )


def _identity(value: dict[str, Any]) -> tuple[str, int | None, Any]:
    """The model, version and event ids of a message's fields (either format), checked."""
    model, version = value["model"], value["version"]
    if not isinstance(model, str):
        raise TypeError("model must be a str")
    if version is not None and type(version) is not int:
        raise TypeError("version must be an int or null")
    ids = value["id"]
    if not all(type(i) is str for i in ids):
        raise TypeError("event ids must be strings")
    return model, version, ids


def _categorical(value: dict[str, Any], names: Any, numeric: dict[str, Any], n: int) -> dict[str, list[str | None]]:
    """The categorical columns of a message's fields (either format), checked against the feature names and the
    ``n`` events."""
    categorical = {str(k): [None if c is None else str(c) for c in v] for k, v in value["categorical"].items()}
    if not all(isinstance(k, str) for k in names) or not set(numeric) | set(categorical) <= set(names):
        raise TypeError("feature names do not match the columns")
    if any(len(c) != n for c in categorical.values()):
        raise ValueError("a feature column has not one value per event")
    return categorical


def _unpack(raw: bytes) -> FeedBatch:
    """The batch of a format-2 message (the same one format 1 decodes to; see the module docstring)."""
    _, size = _PREFIX.unpack_from(raw)
    value = orjson.loads(memoryview(raw)[_PREFIX.size : _PREFIX.size + size])
    if not isinstance(value, dict):
        raise TypeError("the header is not a JSON object")
    if value.get("feed") != 2:
        raise FeedError(f"monitor feed format {value.get('feed')!r} in a format-2 message")
    (model, version, ids), names = _identity(value), value["names"]
    if not isinstance(ids, list):
        raise TypeError("event ids must be strings")
    numeric_names, classes, proba = value["numeric"], value["classes"], value["proba"]
    if not isinstance(numeric_names, list) or not isinstance(classes, list):
        raise TypeError("numeric and classes must be lists")
    n, m, k = len(ids), len(numeric_names), len(classes)
    dense = proba is None
    body = bytearray(memoryview(raw)[_PREFIX.size + size :])  # the arrays are views of it, writeable as decoded ones
    expected = 8 * n * (3 + m + (k if dense else 0))
    if len(body) != expected:
        raise ValueError(f"the arrays take {len(body)} bytes, {expected} expected for {n} events")
    ints = np.frombuffer(body, dtype=_INT, count=3 * n).reshape(3, n).astype(np.int64, copy=False)
    floats = np.frombuffer(body, dtype=_FLOAT, offset=24 * n).astype(np.float64, copy=False)
    matrix = floats[: m * n].reshape(m, n)
    matrix[np.isinf(matrix)] = np.nan  # what format 1's null reads as
    numeric = {str(name): matrix[j] for j, name in enumerate(numeric_names)}
    if len(numeric) != m:
        raise ValueError("a numeric feature is named twice")
    categorical = _categorical(value, names, numeric, n)
    predictions = value["prediction"]
    if len(predictions) != n:
        raise ValueError("predictions and probabilities must have one entry per event")
    probabilities: Sequence[dict[Any, float] | None]
    if dense:
        rows = floats[m * n :].reshape(n, k)
        finite = bool(np.isfinite(rows).all())
        if finite and n and k > 1 and len(set(classes)) == k:
            probabilities = ProbabilityRows(classes, rows)
        else:  # read as format 1 reads them: a class whose probability is not finite is left out
            probabilities = [
                _probabilities(classes, [p if math.isfinite(p) else None for p in row]) for row in rows.tolist()
            ]
    else:
        if len(proba) != n:
            raise ValueError("predictions and probabilities must have one entry per event")
        probabilities = [None if row is None else _probabilities(classes, row) for row in proba]
    invalid = [(int(p), int(o), str(reason)) for p, o, reason in value["invalid"]]
    progress = {int(p): (int(t), int(offset)) for p, t, offset in value["progress"]}
    columns = FeatureColumns(list(names), numeric, categorical, list(range(n)))
    return FeedBatch(
        model, version, ints[0], ints[1], ints[2], ids, columns, predictions, probabilities, invalid, progress
    )


def _ints(values: Any, n: int, name: str) -> np.ndarray:
    array = np.array(values, dtype=np.int64)
    if array.shape != (n,):
        raise ValueError(f"{name} must have one int per event")
    return array


def _dense(classes: list[Any], proba: list[Any], n: int) -> ProbabilityRows | None:
    """Rows of one number per class, held as a matrix (None: not such rows; they are read one by one)."""
    try:
        matrix = np.array(proba, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if matrix.shape != (n, len(classes)) or np.isnan(matrix).any() or len(set(classes)) != len(classes):
        return None
    return ProbabilityRows(classes, matrix)


def _probabilities(classes: list[Any], row: list[Any]) -> dict[Any, float]:
    if len(row) != len(classes):
        raise ValueError("a probability row has not one value per class")
    return {c: float(p) for c, p in zip(classes, row, strict=True) if p is not None}
