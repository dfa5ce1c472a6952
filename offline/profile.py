"""Profiles of the data: the facts printed when framing starts (:func:`profile_frame`), and the reference
profile monitoring and the data-quality gate compare the stream to (:func:`reference_profile`).

:func:`reference_profile` builds a :class:`driftline.models.reference.ReferenceProfile` column by column with
:func:`driftline.models.reference.profile_values` — the same result as ``ReferenceProfile.from_rows`` on the
rows' event dicts, without materialising a million dicts.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"x": [1.0, None, 3.0, 3.0], "c": ["a", "b", "a", "a"], "y": [0, 1, 0, 0]})
>>> facts = profile_frame(df, "y")
>>> facts.rows, facts.duplicates, facts.class_balance
(4, 1, {'0': 3, '1': 1})
>>> [(c.name, c.kind, c.missing) for c in facts.columns]
[('x', 'numeric', 1), ('c', 'categorical', 0), ('y', 'numeric', 0)]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftline.models.features import FeatureSchema
from driftline.models.reference import ReferenceProfile, profile_values
from driftline.offline.framing import target_task
from driftline.offline.prepare import prepare_frame

MAX_CLASSES_SHOWN = 20


@dataclass(frozen=True)
class ColumnFacts:
    """Type, missing values and cardinality of one column."""

    name: str
    dtype: str
    kind: str
    missing: int
    missing_rate: float
    distinct: int
    example: str


@dataclass(frozen=True)
class DataProfile:
    """Rows, per-column facts, duplicates and the target's balance (classification) or summary (regression)."""

    rows: int
    columns: list[ColumnFacts]
    duplicates: int
    target: str
    task: str
    class_balance: dict[str, int] | None
    target_summary: dict[str, float] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def column_kind(column: pd.Series) -> str:
    """``empty``, ``datetime``, ``numeric`` (numbers and bools) or ``categorical``.

    >>> column_kind(pd.Series([True, False])), column_kind(pd.Series(["x"])), column_kind(pd.Series([None]))
    ('numeric', 'categorical', 'empty')
    """
    if column.isna().all():
        return "empty"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "datetime"
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return "numeric"
    return "categorical"


def profile_frame(df: pd.DataFrame, target: str) -> DataProfile:
    """Facts about ``df`` for framing (``target`` must be a column)."""
    columns = []
    for name in df.columns:
        column = df[name]
        missing = int(column.isna().sum())
        present = column.dropna()
        columns.append(
            ColumnFacts(
                name=str(name),
                dtype=str(column.dtype),
                kind=column_kind(column),
                missing=missing,
                missing_rate=missing / len(df) if len(df) else 0.0,
                distinct=int(present.nunique()),
                example=str(present.iloc[0])[:30] if len(present) else "",
            )
        )
    values = df[target].dropna()
    task = target_task(values) if values.nunique() >= 2 else "unknown"
    balance = summary = None
    if task in ("binary", "multiclass"):
        counts = values.astype(str).value_counts()
        balance = {str(k): int(v) for k, v in counts.head(MAX_CLASSES_SHOWN).items()}
    elif task == "regression":
        summary = {k: float(v) for k, v in values.astype(float).describe().items()}
    return DataProfile(len(df), columns, int(df.duplicated().sum()), target, task, balance, summary)


def reference_profile(
    X: pd.DataFrame,
    schema: FeatureSchema,
    predictions: list[Any] | None = None,  # noqa: N803
    seed: int = 0,
) -> ReferenceProfile:
    """The reference profile of the training features (prepared as the stream prepares them) and, when given,
    of the model's predictions."""
    prepared = prepare_frame(X, schema)
    features = {name: profile_values(_values(prepared[name], kind), kind, seed) for name, kind in schema.kinds.items()}
    prediction = None
    if predictions is not None:
        kind = "categorical" if predictions and isinstance(predictions[0], str) else "numeric"
        prediction = profile_values(list(predictions), kind, seed)
    return ReferenceProfile(features=features, prediction=prediction, rows=len(X))


def _values(column: pd.Series, kind: str) -> list[Any]:
    if kind == "categorical":
        return [v if isinstance(v, str) else None for v in column.tolist()]
    array = column.to_numpy(dtype=float)
    return [None if np.isnan(v) else v for v in array.tolist()]
