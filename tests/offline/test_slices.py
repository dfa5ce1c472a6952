"""Error analysis by slice: categories, quantile bins, missing values, and the metric computed per slice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.models.features import FeatureSchema
from driftline.offline.slices import OTHER, overall_error, slice_masks, slice_metrics

SCHEMA = FeatureSchema({"c": "categorical", "x": "numeric"})


def test_slices_cover_each_category_pooled_rare_ones_quantile_bins_and_missing() -> None:
    """Top categories each get a slice, the rest pool into '(other)', numbers get 4 bins, missing its own."""
    X = pd.DataFrame(
        {"c": ["a"] * 40 + ["b"] * 30 + [f"r{i}" for i in range(30)], "x": [float(i) for i in range(90)] + [None] * 10}
    )
    slices = slice_masks(X, SCHEMA, bins=4, top=2)
    labels = [(feature, label) for feature, label, _ in slices]
    assert labels[:3] == [("c", "a"), ("c", "b"), ("c", OTHER)]
    x_slices = [(label, int(mask.sum())) for feature, label, mask in slices if feature == "x"]
    assert [n for _, n in x_slices] == [23, 22, 22, 23, 10] and x_slices[-1][0] == "missing"


def test_slice_metric_finds_the_segment_where_the_model_is_wrong() -> None:
    """A model wrong exactly on category 'b' has error rate 1 on that slice and 0 on 'a'."""
    X = pd.DataFrame({"c": ["a", "b"] * 50, "x": np.linspace(0, 1, 100)})
    y = np.array([0, 1] * 50)
    proba = np.tile([[0.9, 0.1]], (100, 1))  # always predicts class 0
    rows = {(r["feature"], r["slice"]): r for r in slice_metrics(X, SCHEMA, y, proba, task="binary", metric="f1")}
    assert rows[("c", "a")]["error_rate"] == 0.0
    assert rows[("c", "b")]["error_rate"] == 1.0
    assert rows[("c", "b")]["rows"] == 50


def test_regression_slices_report_the_metric_and_mean_absolute_error() -> None:
    """For regression every slice has the RMSE and the MAE of its rows."""
    X = pd.DataFrame({"c": ["a", "b"] * 10, "x": np.arange(20.0)})
    y = np.zeros(20)
    pred = np.where(X["c"] == "a", 1.0, 3.0)
    rows = {(r["feature"], r["slice"]): r for r in slice_metrics(X, SCHEMA, y, pred, task="regression", metric="rmse")}
    assert rows[("c", "b")]["rmse"] == pytest.approx(3.0)
    assert rows[("c", "a")]["mae"] == pytest.approx(1.0)


def test_slices_carry_intervals_the_overall_rate_and_leave_out_what_says_nothing() -> None:
    """3 more errors than average on ~114 rows is inside the interval; a slice of every row is left out; F1 on a
    slice without positives is undefined, not 0."""
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"c": rng.choice(["a", "b", "only_neg"], n), "x": np.full(n, 1.0)})
    y = np.where(X["c"] == "only_neg", 0, rng.integers(0, 2, n))
    wrong = rng.random(n) < 0.1
    decided = np.where(wrong, 1 - y, y)
    proba = np.column_stack([1.0 - decided, decided.astype(float)])
    rows = {(r["feature"], r["slice"]): r for r in slice_metrics(X, SCHEMA, y, proba, task="binary", metric="f1")}
    assert ("x", "= 1") not in rows, "a constant feature's one slice is every row"
    assert np.isnan(rows[("c", "only_neg")]["f1"]) and rows[("c", "only_neg")]["error_rate"] >= 0
    overall = overall_error(y, proba, task="binary")
    assert overall["errors"] == int(wrong.sum()) and overall["rows"] == n
    for row in rows.values():
        assert row["error_ci_low"] <= row["error_rate"] <= row["error_ci_high"]
        assert row["error_ci_low"] < overall["error_rate"] < row["error_ci_high"], "same error rate: intervals overlap"
