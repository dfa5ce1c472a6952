"""Error analysis: the metric on each slice of the data — every value of a categorical feature (the most
frequent ones, the rest pooled) and quantile bins of each numeric feature, with missing values a slice of
their own. Run on the chosen model's out-of-fold predictions, so the test set stays locked.

Examples
--------
>>> import pandas as pd
>>> from driftline.models.features import FeatureSchema
>>> X = pd.DataFrame({"c": ["a", "a", "b", "b"], "x": [1.0, 2.0, 3.0, None]})
>>> y = np.array([0, 1, 0, 1])
>>> proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.9, 0.1]])
>>> rows = slice_metrics(X, FeatureSchema({"c": "categorical", "x": "numeric"}), y, proba,
...                      task="binary", metric="accuracy", bins=2)
>>> [(r["feature"], r["slice"], r["rows"], r["accuracy"]) for r in rows]
[('c', 'a', 2, 1.0), ('c', 'b', 2, 0.0), ('x', '[1, 2]', 2, 1.0), ('x', '(2, 3]', 1, 0.0), ('x', 'missing', 1, 0.0)]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from driftline.models.features import FeatureSchema
from driftline.offline.metrics import decide, score
from driftline.offline.prepare import prepare_frame

TOP_CATEGORIES = 10
OTHER = "(other)"


def slice_masks(
    X: pd.DataFrame,
    schema: FeatureSchema,
    bins: int = 4,  # noqa: N803
    top: int = TOP_CATEGORIES,
) -> list[tuple[str, str, np.ndarray]]:
    """(feature, slice label, boolean mask) for every slice of every feature, in schema order."""
    prepared = prepare_frame(X, schema)
    out: list[tuple[str, str, np.ndarray]] = []
    for name, kind in schema.kinds.items():
        column = prepared[name]
        missing = column.isna().to_numpy()
        if kind == "categorical":
            counts = column.value_counts()
            kept = list(counts.index[:top])
            out.extend((name, str(value), (column == value).to_numpy()) for value in kept)
            rest = ~missing & ~column.isin(kept).to_numpy()
            if rest.any():
                out.append((name, OTHER, rest))
        else:
            present = column.dropna()
            if present.nunique() > 1:
                codes, edges = pd.qcut(present, q=bins, retbins=True, duplicates="drop")
                labels = _bin_labels(edges)
                position = pd.Series(codes.cat.codes, index=present.index).reindex(column.index, fill_value=-1)
                out.extend((name, label, (position == i).to_numpy()) for i, label in enumerate(labels))
            elif len(present):
                out.append((name, f"= {present.iloc[0]:g}", ~missing))
        if missing.any():
            out.append((name, "missing", missing))
    return out


def slice_metrics(
    X: pd.DataFrame,
    schema: FeatureSchema,
    y: np.ndarray,
    out: np.ndarray,
    *,  # noqa: N803
    task: str,
    metric: str,
    threshold: float | None = None,
    bins: int = 4,
) -> list[dict[str, Any]]:
    """One row per slice: feature, slice, rows, the primary metric (NaN where undefined) and an error measure
    that always exists (error rate for classification, mean absolute error for regression)."""
    rows = []
    error_name = "mae" if task == "regression" else "error_rate"
    for feature, label, mask in slice_masks(X, schema, bins):
        if not mask.any():
            continue
        y_slice, out_slice = y[mask], out[mask]
        if task == "regression":
            value = score(metric, y_slice, pred=out_slice)
            error = float(np.mean(np.abs(out_slice - y_slice)))
        else:
            value = score(metric, y_slice, proba=out_slice, threshold=threshold)
            error = float(np.mean(decide(out_slice, threshold) != y_slice))
        rows.append({"feature": feature, "slice": label, "rows": int(mask.sum()), metric: value, error_name: error})
    return rows


def _bin_labels(edges: np.ndarray) -> list[str]:
    labels = []
    for i in range(len(edges) - 1):
        left = "[" if i == 0 else "("
        labels.append(f"{left}{edges[i]:.4g}, {edges[i + 1]:.4g}]")
    return labels
