"""Data preparation: the stream's feature preparation, vectorised, and the scikit-learn preprocessing pipelines.

:meth:`driftline.models.features.FeatureSchema.prepare` is the one preparation shared by training and the stream.
:func:`to_events` turns table rows into the raw feature dicts an event would carry (Python values,
``None`` for missing); :func:`prepare_frame` is the column-wise equivalent of ``schema.prepare`` on each of them
(numbers and bools become floats, categories become strings, missing stays missing) — tests hold the two equal.
The scikit-learn candidates start with :class:`SchemaPreparer` so a saved pipeline applies to raw rows.

Examples
--------
>>> import pandas as pd
>>> from driftline.models.features import FeatureSchema, category_text
>>> schema = FeatureSchema({"amount": "numeric", "zip": "categorical", "vip": "numeric"})
>>> df = pd.DataFrame({"amount": [3.5, None], "zip": [75001, 75002], "vip": [True, False]})
>>> to_events(df, schema)
[{'amount': 3.5, 'zip': 75001, 'vip': True}, {'amount': None, 'zip': 75002, 'vip': False}]
>>> [schema.prepare(e) for e in to_events(df, schema)]
[{'amount': 3.5, 'zip': '75001', 'vip': 1.0}, {'zip': '75002', 'vip': 0.0}]
>>> prepared_rows(prepare_frame(df, schema))
[{'amount': 3.5, 'zip': '75001', 'vip': 1.0}, {'zip': '75002', 'vip': 0.0}]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from driftline.models.features import FeatureSchema, category_text
from driftline.offline.errors import OfflineError
from driftline.offline.framing import FramingCard, target_inference
from driftline.offline.targets import native

MISSING_CATEGORY = "__missing__"
#: Category levels kept by the one-hot / ordinal encoders; rarer ones share an "infrequent" level.
MAX_CATEGORIES = 50


@dataclass(frozen=True)
class Conformed:
    """A table whose columns hold the kind most of their values agree on, without the rows that conflict."""

    frame: pd.DataFrame
    #: column -> rows whose value conflicts with the column's kind (text in a numeric column, a stray label)
    conflicts: dict[str, int]
    #: rows dropped (a row conflicting in two columns counts once)
    dropped: int

    def describe(self) -> str:
        """One line for the report (empty when nothing conflicted)."""
        if not self.dropped:
            return ""
        where = ", ".join(f"{name}: {count}" for name, count in self.conflicts.items())
        return f"dropped {self.dropped} rows whose values conflict with their column's kind ({where})"


def conform_columns(df: pd.DataFrame, card: FramingCard) -> Conformed:
    """Make each column the kind most of its values agree on and drop the rows that conflict, with a count.

    A text column (one ``?`` cell is enough for pandas) whose values are mostly numbers becomes numeric unless
    the card lists it as categorical; a regression target the same; a classification target drops its stray
    labels (values under 1% of the rows, see :func:`driftline.offline.framing.target_inference`) when the
    card's task is the one the labels agree on.

    >>> df = pd.DataFrame({"age": ["31", "?", "45", "52"], "y": [0, 1, 0, 1]})
    >>> from driftline.offline.framing import draft_card
    >>> conformed = conform_columns(df, draft_card(df, "y"))
    >>> conformed.frame["age"].tolist(), conformed.conflicts, conformed.describe()
    ([31.0, 45.0, 52.0], {'age': 1}, "dropped 1 rows whose values conflict with their column's kind (age: 1)")
    """
    skip = {card.time_column, *card.id_columns, *card.exclude, *card.categorical}
    numeric = [n for n in df.columns if n not in skip and (n != card.target or card.task == "regression")]
    bad = pd.Series(False, index=df.index)
    conflicts: dict[str, int] = {}
    columns: dict[str, pd.Series] = {}
    for name in numeric:
        column = df[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
            continue
        parsed = pd.to_numeric(column.astype(object).where(column.notna(), None), errors="coerce")
        texts = column.notna() & parsed.isna()
        if int(parsed.notna().sum()) > int(texts.sum()):
            columns[name] = parsed
            if texts.any():
                conflicts[name] = int(texts.sum())
                bad |= texts
    if card.target in df.columns and card.task != "regression":
        stray = _stray_targets(df[card.target], card)
        if stray.any():
            conflicts[card.target] = int(stray.sum())
            bad |= stray
    frame = df.assign(**columns) if columns else df
    dropped = int(bad.sum())
    return Conformed(frame[~bad] if dropped else frame, conflicts, dropped)


def _stray_targets(target: pd.Series, card: FramingCard) -> pd.Series:
    try:
        inferred = target_inference(target)
    except OfflineError:  # ambiguous: the card's task decides, nothing is a stray
        return pd.Series(False, index=target.index)
    if inferred.task != card.task or not inferred.strays:
        return pd.Series(False, index=target.index)
    strays = set(inferred.strays)
    return target.map(lambda v: not _missing(v) and category_text(native(v)) in strays).astype(bool)


def feature_schema(df: pd.DataFrame, card: FramingCard) -> FeatureSchema:
    """Features are every column but the target, id, time and excluded ones; kinds come from dtypes.

    Numbers and bools are numeric unless the card lists them under ``categorical``; the rest is categorical.
    """
    skip = {card.target, card.time_column, *card.id_columns, *card.exclude}
    kinds: dict[str, Any] = {}
    for name in df.columns:
        if name in skip:
            continue
        column = df[name]
        if pd.api.types.is_datetime64_any_dtype(column):
            raise OfflineError(f"column '{name}' holds dates: name it as the time column or exclude it in the card")
        numeric = pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
        kinds[name] = "numeric" if numeric and name not in card.categorical else "categorical"
    if not kinds:
        raise OfflineError("no feature columns left after removing the target, id, time and excluded columns")
    return FeatureSchema(kinds)


def deduplicate(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop exact duplicate rows (keeping the first); return the frame and how many were dropped.

    >>> deduplicate(pd.DataFrame({"a": [1, 1, 2]}))[1]
    1
    """
    keep = ~df.duplicated()
    dropped = int(len(df) - keep.sum())
    return (df[keep] if dropped else df), dropped


def to_events(df: pd.DataFrame, schema: FeatureSchema) -> list[dict[str, Any]]:
    """The raw feature dict an event would carry for each row: Python values, ``None`` for missing."""
    columns = {name: _raw_values(df[name], kind) for name, kind in schema.kinds.items()}
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _raw_values(column: pd.Series, kind: str) -> list[Any]:
    """Python values of one column as a producer would send them (integer-valued float categories as ints)."""
    if kind == "categorical" and pd.api.types.is_float_dtype(column):
        present = column.dropna()
        if len(present) and np.all(np.mod(present.to_numpy(), 1) == 0):
            column = column.astype("Int64")
    values = column.astype(object).tolist()
    return [None if _missing(v) else v for v in values]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def prepare_frame(df: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Column-wise ``schema.prepare``: float columns for numeric features, str (object) for categorical, NaN missing.

    Raises :class:`OfflineError` for a value ``schema.prepare`` would reject (text in a numeric feature, inf).
    """
    out: dict[str, pd.Series] = {}
    for name, kind in schema.kinds.items():
        if name not in df.columns:
            values: np.ndarray = np.full(len(df), np.nan) if kind == "numeric" else np.full(len(df), np.nan, object)
        else:
            values = _numeric(df[name]) if kind == "numeric" else _categorical(df[name])
        # explicit dtypes: pandas >= 3 would otherwise infer its own string dtype for the categories
        out[name] = pd.Series(values, index=df.index, dtype=float if kind == "numeric" else object)
    return pd.DataFrame(out, index=df.index)


def _numeric(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.astype("float64").to_numpy(dtype=float, na_value=np.nan)
    else:
        raw = column.astype(object)
        present = raw[raw.map(lambda v: not _missing(v))]
        bad = present[~present.map(lambda v: isinstance(v, bool | int | float))]
        if len(bad):
            raise OfflineError(f"feature '{column.name}' expects a number, got {type(bad.iloc[0]).__name__}")
        values = raw.map(lambda v: np.nan if _missing(v) else float(v)).to_numpy(dtype=float)
    if np.isinf(values).any():
        raise OfflineError(f"feature '{column.name}' has infinite values")
    return values


def _categorical(column: pd.Series) -> np.ndarray:
    values = _raw_values(column, "categorical")
    return np.array([np.nan if v is None else category_text(v) for v in values], dtype=object)


def prepared_rows(prepared: pd.DataFrame) -> list[dict[str, float | str]]:
    """Rows of a :func:`prepare_frame` result as dicts without their missing features (what River sees)."""
    names = list(prepared.columns)
    columns = [prepared[name].tolist() for name in names]
    return [
        {n: v for n, v in zip(names, values, strict=True) if not _missing(v)} for values in zip(*columns, strict=True)
    ]


class SchemaPreparer(TransformerMixin, BaseEstimator):
    """Stateless scikit-learn step applying :func:`prepare_frame` so a fitted pipeline takes raw rows."""

    def __init__(self, kinds: dict[str, str] | None = None):
        self.kinds = kinds

    def fit(self, X: pd.DataFrame, y: Any = None) -> SchemaPreparer:  # noqa: N803 - scikit-learn naming
        self.schema_ = FeatureSchema(self.kinds or {})
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        return prepare_frame(X, self.schema_)


def build_preprocessor(schema: FeatureSchema, style: Literal["linear", "tree"]) -> Pipeline:
    """Raw rows -> model matrix, fitted on training data only.

    ``linear``: mean imputation (with missing indicators) and standard scaling of numbers, one-hot categories
    (missing is its own level, unseen levels are ignored). ``tree``: numbers as they are (gradient boosting
    handles missing values), categories ordinal-encoded with missing and unseen levels as NaN.
    """
    numeric, categorical = schema.numeric, schema.categorical
    if style == "linear":
        numbers: Any = Pipeline(
            [("impute", SimpleImputer(strategy="mean", add_indicator=True)), ("scale", StandardScaler())]
        )
        categories: Any = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                (
                    "encode",
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", max_categories=MAX_CATEGORIES, sparse_output=False
                    ),
                ),
            ]
        )
    else:
        numbers = "passthrough"
        categories = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            max_categories=MAX_CATEGORIES,
        )
    parts = []
    if numeric:
        parts.append(("numeric", numbers, numeric))
    if categorical:
        parts.append(("categorical", categories, categorical))
    columns = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("prepare", SchemaPreparer(schema.to_dict())), ("columns", columns)])


def categorical_mask(schema: FeatureSchema) -> list[bool]:
    """Which columns of the ``tree`` preprocessor's output are categorical (numbers come first).

    >>> categorical_mask(FeatureSchema({"c": "categorical", "x": "numeric"}))
    [False, True]
    """
    return [False] * len(schema.numeric) + [True] * len(schema.categorical)
