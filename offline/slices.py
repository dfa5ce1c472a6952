"""Error analysis: the metric on each slice of the data — every value of a categorical feature (the most
frequent ones, the rest pooled) and quantile bins of each numeric feature, with missing values a slice of
their own. Run on the chosen model's out-of-fold predictions, so the test set stays locked.

Each slice's error measure has a 95% interval (Wilson's for an error rate, a normal one for a mean absolute
error) to compare with :func:`overall_error`, the same measure over every row: a few errors more on a hundred
rows is usually noise. A slice that holds every row says nothing and is left out; a binary F1 on a slice without
a positive label is undefined (NaN), not 0.

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
>>> rows[0]["error_rate"], [round(v, 3) for v in (rows[0]["error_ci_low"], rows[0]["error_ci_high"])]
(0.0, [0.0, 0.658])
>>> overall_error(y, proba, task="binary")["error_rate"]
0.5
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


def wilson(errors: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's 95% interval of a proportion of ``errors`` in ``n``.

    >>> [round(v, 4) for v in wilson(5, 100)]
    [0.0215, 0.1118]
    """
    if n <= 0:
        return float("nan"), float("nan")
    p = errors / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _error(task: str, y: np.ndarray, out: np.ndarray, threshold: float | None) -> dict[str, float]:
    """The error measure with its 95% interval: error rate (Wilson) or mean absolute error (normal)."""
    if task == "regression":
        absolute = np.abs(np.asarray(out, dtype=float) - np.asarray(y, dtype=float))
        mae = float(absolute.mean())
        half = 1.959963984540054 * float(absolute.std(ddof=1)) / np.sqrt(len(absolute)) if len(absolute) > 1 else np.nan
        return {"mae": mae, "error_ci_low": max(0.0, mae - half), "error_ci_high": mae + half}
    wrong = int(np.sum(decide(out, threshold) != y))
    low, high = wilson(wrong, len(y))
    return {"error_rate": wrong / len(y), "error_ci_low": low, "error_ci_high": high, "errors": wrong}


def overall_error(y: np.ndarray, out: np.ndarray, *, task: str, threshold: float | None = None) -> dict[str, Any]:
    """The error measure over every row (what each slice's is compared with), with its interval."""
    return {"rows": int(len(y)), **_error(task, y, out, threshold)}


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
    for feature, label, mask in slice_masks(X, schema, bins):
        if not mask.any() or mask.all():  # empty, or every row: nothing to compare
            continue
        y_slice, out_slice = y[mask], out[mask]
        if task == "regression":
            value = score(metric, y_slice, pred=out_slice)
        elif metric == "f1" and task == "binary" and not np.any(y_slice == 1):
            value = float("nan")  # no positive label: F1 is undefined on this slice
        else:
            value = score(metric, y_slice, proba=out_slice, threshold=threshold)
        rows.append(
            {
                "feature": feature,
                "slice": label,
                "rows": int(mask.sum()),
                metric: value,
                **_error(task, y_slice, out_slice, threshold),
            }
        )
    return rows


def _bin_labels(edges: np.ndarray) -> list[str]:
    labels = []
    for i in range(len(edges) - 1):
        left = "[" if i == 0 else "("
        labels.append(f"{left}{edges[i]:.4g}, {edges[i + 1]:.4g}]")
    return labels
