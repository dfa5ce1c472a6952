"""Score a file's rows through the stream's own stage (pure: no I/O; the file job is :mod:`.batch_job`).

Each row becomes one ``events`` record, exactly as ``driftline produce`` would publish it (``event_id``, ``ts`` and
``model`` columns taken as such, every other column a feature, empty CSV cells null), and a chunk of records goes
through :func:`driftline.streams.scoring_stage.score_records`: the same parsing, validation, preparation, model,
decision threshold and prediction records as the stream. A row the stream would dead-letter is a rejected row
with the dead letter's stage, error class and reason.

Examples
--------
>>> import pandas as pd
>>> cells = pd.DataFrame({"event_id": ["a", "b"], "x": ["1.5", ""], "n": ["3", "x"]}, dtype=str)
>>> columns = csv_columns(cells)
>>> columns
{'event_id': ['a', 'b'], 'x': [1.5, None], 'n': [3, 'x']}
>>> [r.value for r in chunk_records(columns, first_row=10, model="m", default_ts=7)]
[b'{"event_id":"a","ts":7,"model":"m","features":{"x":1.5,"n":3}}', \
b'{"event_id":"b","ts":7,"model":"m","features":{"x":null,"n":"x"}}']
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from driftline.streams.scoring_stage import LoadedModel, ScoringPolicy, model_names, score_records

#: Columns that are parts of the event, not features (``driftline produce``'s RESERVED_COLUMNS).
#: Repeated here: the pure stage may not import the producer, and the producer should not import pandas.
RESERVED_COLUMNS = ("event_id", "ts", "model")
#: Topic name the file's records carry (it names where a row came from in the rejected rows).
FILE_SOURCE = "file"
#: Fields of the stream's prediction records kept in the output (latency and scoring time are not the file's).
PREDICTION_FIELDS = ("event_id", "model", "model_version", "prediction", "probabilities", "score", "confidence")
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


@dataclass(frozen=True, slots=True)
class RowRecord:
    """One row of the file as an ``events`` record (what the stage reads): ``offset`` is the row number."""

    offset: int
    key: bytes
    value: bytes
    timestamp: int
    topic: str = FILE_SOURCE
    partition: int = 0


@dataclass
class ScoredChunk:
    """The outcome of one chunk: prediction columns (``row`` and :data:`PREDICTION_FIELDS`) and rejected rows, both
    in row order."""

    predictions: dict[str, list[Any]] = field(default_factory=lambda: {"row": []})
    rejected: list[dict[str, Any]] = field(default_factory=list)
    #: Positions (in the chunk) of the rows that got a prediction.
    kept: list[int] = field(default_factory=list)


def csv_columns(cells: pd.DataFrame, numeric: Collection[str] = ()) -> dict[str, list[Any]]:
    """A chunk of CSV text cells (read with ``dtype=str``, empty cells as ``""``) as column lists of values, the way
    ``driftline produce`` reads a CSV: integers, then floats, else the text; an empty cell is null.

    A column named in ``numeric`` (the model's numeric features) whose cells are all numbers is read as floats in
    one vectorised cast: preparation turns its integers into floats anyway.
    """
    columns = {}
    for name in cells:
        if name == "event_id":
            columns[name] = cells[name].tolist()
            continue
        floats = _all_floats(cells[name]) if name in numeric else None
        columns[str(name)] = floats if floats is not None else _parse_cells(cells[name])
    return columns


def _all_floats(cells: pd.Series) -> list[float] | None:
    try:
        return pc.cast(pa.array(cells, pa.string()), pa.float64()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # an empty cell or text: the cell-by-cell reading
        return None


def _parse_cells(cells: pd.Series) -> list[Any]:
    values = cells.to_numpy(dtype=object).copy()
    empty = (cells == "").to_numpy()
    integer = cells.str.fullmatch(r"\s*[+-]?\d+\s*").to_numpy(dtype=bool)
    number = pd.to_numeric(cells.where(~(empty | integer)), errors="coerce").to_numpy(dtype=float)
    floating = ~np.isnan(number)
    special = cells.str.strip().str.lower().isin(_NON_FINITE).to_numpy()  # NaN, inf: the stream refuses them
    values[empty] = None
    if integer.any():
        values[integer] = [int(text) for text in values[integer]]
    if floating.any():
        values[floating] = number[floating].tolist()
    if special.any():
        values[special] = [float(text) for text in values[special]]
    return values.tolist()


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _non_finite(column: Sequence[Any]) -> list[int]:
    """Positions of NaN and infinite floats in ``column`` (a sum checks a column of numbers at C speed).

    >>> _non_finite([1.0, 2, True]), _non_finite([1.0, None, float("inf"), "x", float("nan")])
    ([], [2, 4])
    """
    try:
        if math.isfinite(sum(column)):
            return []
    except TypeError:  # not all numbers
        pass
    return [i for i, v in enumerate(column) if type(v) is float and v - v != 0]


def chunk_records(columns: Mapping[str, Sequence[Any]], first_row: int, model: str, default_ts: int) -> list[RowRecord]:
    """One ``events`` record per row of ``columns`` (all of one length), numbered from ``first_row``.

    A row without an ``event_id`` is ``row-N``; without a ``ts``, ``default_ts``. NaN and infinity are written as
    JSON's ``NaN``/``Infinity`` so the stage refuses them as the stream does.
    """
    names = [n for n in columns if n not in RESERVED_COLUMNS]
    size = len(next(iter(columns.values()))) if columns else 0
    ids = columns.get("event_id") or [None] * size
    times = columns.get("ts") or [None] * size
    feature_columns = [columns[n] for n in names]
    non_finite = {i for column in feature_columns for i in _non_finite(column)}
    rows = zip(*feature_columns, strict=True) if feature_columns else iter([()] * size)
    records = []
    for i, values in enumerate(rows):
        row = first_row + i
        event_id = ids[i]
        event_id = f"row-{row}" if event_id is None or event_id == "" else str(event_id)
        ts = times[i]
        features = dict(zip(names, values, strict=True))
        event = {"event_id": event_id, "ts": default_ts if ts is None else ts, "model": model, "features": features}
        if i in non_finite:
            value = json.dumps(event, default=_json_default).encode()
        else:
            value = orjson.dumps(event, default=_json_default, option=orjson.OPT_NAIVE_UTC)
        records.append(RowRecord(row, event_id.encode(), value, default_ts))
    return records


def score_chunk(
    records: Sequence[RowRecord], loaded: LoadedModel, policy: ScoringPolicy, threshold: float | None = None
) -> ScoredChunk:
    """Score ``records`` with ``loaded`` through the stream's stage; every record ends up in exactly one list."""
    _, parsed = model_names(records, policy)
    batch = score_records(
        records,
        parsed,
        lambda name: loaded if name == loaded.name else None,
        policy,
        thresholds={loaded.name: threshold} if threshold is not None else None,
    )
    out = ScoredChunk()
    refused = {letter.offset: letter for letter in batch.dead_letters}
    first = records[0].offset if records else 0
    for letter in sorted(batch.dead_letters, key=lambda letter: letter.offset):
        out.rejected.append(
            {
                "row": letter.offset,
                "event_id": (letter.key or b"").decode("utf-8", "replace"),
                "stage": letter.stage,
                "error_class": letter.error_class,
                "reason": letter.message,
                "record": (letter.value or b"").decode("utf-8", "replace"),
            }
        )
    out.kept = [r.offset - first for r in records if r.offset not in refused]
    parsed_predictions = [orjson.loads(value) for _, value in batch.predictions]
    out.predictions["row"] = [first + position for position in out.kept]
    for name in PREDICTION_FIELDS:
        out.predictions[name] = [p[name] for p in parsed_predictions]
    return out
