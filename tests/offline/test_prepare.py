"""Preparation: the column-wise preparation equals the stream's schema.prepare, and the scikit-learn
preprocessing is fitted on training rows only."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from driftline.models.features import FeatureSchema
from driftline.offline.errors import OfflineError
from driftline.offline.framing import draft_card
from driftline.offline.prepare import (
    build_preprocessor,
    deduplicate,
    feature_schema,
    prepare_frame,
    prepared_rows,
    to_events,
)

SCHEMA = FeatureSchema(
    {
        "amount": "numeric",
        "vip": "numeric",
        "zip": "categorical",
        "country": "categorical",
        "score": "numeric",
        "store": "categorical",
    }
)


def raw() -> pd.DataFrame:
    """Typed like a CSV load: float with NaN, bool, int codes as categories, text with None, nullable ints,
    and integer category codes turned to floats by a missing value."""
    return pd.DataFrame(
        {
            "amount": [3.5, np.nan, -1.0, 0.0],
            "vip": [True, False, True, False],
            "zip": [75001, 75002, 75001, 10115],
            "country": ["FR", None, "DE", "FR"],
            "score": pd.array([1, None, 3, 4], dtype="Int64"),
            "store": [12.0, np.nan, 7.0, 12.0],
        }
    )


def test_prepare_frame_row_by_row_equals_schema_prepare_of_the_raw_event() -> None:
    """Every row prepared column-wise equals schema.prepare on the event a producer would send for it:
    bools become 1.0/0.0, int codes become '75001', float-coded categories '12' (not '12.0'), missing drops."""
    df = raw()
    events = to_events(df, SCHEMA)
    assert events[1] == {"amount": None, "vip": False, "zip": 75002, "country": None, "score": None, "store": None}
    assert prepared_rows(prepare_frame(df, SCHEMA)) == [SCHEMA.prepare(e) for e in events]
    assert SCHEMA.prepare(events[0]) == {
        "amount": 3.5,
        "vip": 1.0,
        "zip": "75001",
        "country": "FR",
        "score": 1.0,
        "store": "12",
    }


def test_prepare_frame_adds_an_absent_feature_as_missing() -> None:
    """A feature absent from the frame is all-missing, as an event without it would be."""
    prepared = prepare_frame(raw().drop(columns="country"), SCHEMA)
    assert prepared["country"].isna().all()
    assert list(prepared.columns) == list(SCHEMA.kinds)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("amount", ["1.5", "x", None, 2.0], "feature 'amount' expects a number, got str"),
        ("amount", [1.0, math.inf, 0.0, 2.0], "feature 'amount' has infinite values"),
    ],
)
def test_prepare_frame_rejects_what_the_stream_would_dead_letter(column, values, message) -> None:
    """Text in a numeric feature and infinite numbers are refused, as schema.prepare refuses them."""
    df = raw().astype({column: object}).assign(**{column: values})
    with pytest.raises(OfflineError, match=message):
        prepare_frame(df, SCHEMA)


def test_feature_schema_skips_target_id_time_excluded_and_honours_forced_categories() -> None:
    """Features: everything but target/id/time/excluded; numbers numeric unless listed as categorical."""
    df = raw().assign(id=[f"r{i}" for i in range(4)], label=[0, 1, 0, 1], notes=[None] * 4)
    card = draft_card(df, "label")
    card = dataclasses.replace(card, categorical=("zip",))
    schema = feature_schema(df, card)
    assert "label" not in schema.kinds and "id" not in schema.kinds and "notes" not in schema.kinds
    assert schema.kinds["zip"] == "categorical" and schema.kinds["amount"] == "numeric"
    assert schema.kinds["vip"] == "numeric"


def test_deduplicate_drops_exact_duplicate_rows_only() -> None:
    """Two identical rows become one; rows differing in one value stay."""
    df = pd.DataFrame({"a": [1, 1, 1], "b": ["x", "x", "y"]})
    kept, dropped = deduplicate(df)
    assert dropped == 1 and kept["b"].tolist() == ["x", "y"]


def test_linear_preprocessor_learns_scaling_from_training_rows_only_and_ignores_unseen_categories() -> None:
    """Fitted on train rows, the scaler's mean is the train mean; a category never seen in training and a
    missing value still transform to finite numbers."""
    schema = FeatureSchema({"x": "numeric", "c": "categorical"})
    train = pd.DataFrame({"x": [0.0, 2.0, 4.0], "c": ["a", "b", "a"]})
    later = pd.DataFrame({"x": [100.0, None], "c": ["zzz", None]})
    pipeline = build_preprocessor(schema, "linear").fit(train)
    numbers = pipeline.named_steps["columns"].named_transformers_["numeric"]
    assert numbers.named_steps["scale"].mean_[0] == pytest.approx(2.0)
    out = pipeline.transform(later)
    assert np.isfinite(out).all()


def test_tree_preprocessor_keeps_missing_and_unseen_categories_as_nan() -> None:
    """Gradient boosting gets NaN for missing numbers and for categories unseen in training."""
    schema = FeatureSchema({"x": "numeric", "c": "categorical"})
    pipeline = build_preprocessor(schema, "tree").fit(pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}))
    out = pipeline.transform(pd.DataFrame({"x": [None, 3.0], "c": ["b", "new"]}))
    assert np.isnan(out[0, 0]) and out[0, 1] == 1.0 and np.isnan(out[1, 1])
