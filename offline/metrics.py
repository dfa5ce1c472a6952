"""Weighted metrics in plain numpy, fast enough to bootstrap a 200k-row test set a thousand times.

A bootstrap resample is a vector of row weights (how often each row was drawn), so every metric takes
optional ``weights``; :func:`metric_function` does the per-dataset work (sorting for ROC-AUC) once and returns
a function of the weights. Classification targets are integer codes ``0..k-1``; scores are an ``(n, k)``
probability matrix whose column ``j`` is class ``j`` (for binary, column 1 is the positive class).

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 0, 1, 1])
>>> proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.35, 0.65], [0.2, 0.8]])
>>> score("accuracy", y, proba=proba), score("f1", y, proba=proba), score("roc_auc", y, proba=proba)
(0.75, 0.8, 1.0)
>>> score("f1", y, proba=proba, threshold=0.7)
0.6666666666666666
>>> score("rmse", np.array([1.0, 2.0]), pred=np.array([2.0, 2.0])), score("mae", np.array([1.0, 3.0]), pred=np.zeros(2))
(0.7071067811865476, 2.0)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

HIGHER_IS_BETTER = {"f1": True, "accuracy": True, "roc_auc": True, "rmse": False, "mae": False}

WeightedMetric = Callable[[np.ndarray | None], float]


def decide(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class codes from probabilities: argmax, or ``P(class 1) >= threshold`` for binary.

    >>> decide(np.array([[0.7, 0.3], [0.2, 0.8]]), threshold=0.25).tolist()
    [1, 1]
    """
    if threshold is not None and proba.shape[1] == 2:
        return (proba[:, 1] >= threshold).astype(int)
    return np.argmax(proba, axis=1)


def metric_function(
    metric: str,
    y: np.ndarray,
    *,
    proba: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    threshold: float | None = None,
) -> WeightedMetric:
    """A function ``weights -> metric value`` for fixed targets and predictions (``None`` means equal weights)."""
    if metric in ("rmse", "mae"):
        if pred is None:
            raise ValueError(f"{metric} needs point predictions")
        error = np.asarray(pred, dtype=float) - np.asarray(y, dtype=float)
        return _rmse(error) if metric == "rmse" else _mae(error)
    if proba is None:
        raise ValueError(f"{metric} needs class probabilities")
    y = np.asarray(y, dtype=int)
    k = proba.shape[1]
    if metric == "roc_auc":
        columns = [1] if k == 2 else range(k)
        aucs = [_auc(y == c, proba[:, c]) for c in columns]
        return lambda w: _nanmean([auc(w) for auc in aucs])
    decided = decide(proba, threshold)
    if metric == "accuracy":
        correct = (decided == y).astype(float)
        return lambda w: _weighted_mean(correct, w)
    if metric == "f1":
        return _f1(y, decided, k)
    raise ValueError(f"unknown metric {metric!r}")


def score(
    metric: str,
    y: np.ndarray,
    *,
    proba: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    threshold: float | None = None,
    weights: np.ndarray | None = None,
) -> float:
    """One metric value (binary F1 of class 1, macro F1 for multiclass, one-vs-rest macro ROC-AUC)."""
    return metric_function(metric, y, proba=proba, pred=pred, threshold=threshold)(weights)


def confusion(y: np.ndarray, decided: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted ``k x k`` confusion matrix, rows true class, columns predicted class.

    >>> confusion(np.array([0, 1, 1]), np.array([0, 0, 1]), 2).tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    w = None if weights is None else np.asarray(weights, dtype=float)
    counts = np.bincount(np.asarray(y) * k + np.asarray(decided), weights=w, minlength=k * k)
    return counts.astype(float).reshape(k, k)


def _weighted_mean(values: np.ndarray, w: np.ndarray | None) -> float:
    if w is None:
        return float(values.mean()) if values.size else float("nan")
    total = w.sum()
    return float(values @ w / total) if total else float("nan")


def _rmse(error: np.ndarray) -> WeightedMetric:
    squared = error**2
    return lambda w: float(np.sqrt(_weighted_mean(squared, w)))


def _mae(error: np.ndarray) -> WeightedMetric:
    absolute = np.abs(error)
    return lambda w: _weighted_mean(absolute, w)


def _f1(y: np.ndarray, decided: np.ndarray, k: int) -> WeightedMetric:
    def f1(w: np.ndarray | None) -> float:
        matrix = confusion(y, decided, k, w)
        tp = np.diag(matrix)
        support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
        denominator = support + predicted
        per_class = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
        if k == 2:
            return float(per_class[1])
        present = denominator > 0
        return float(per_class[present].mean()) if present.any() else float("nan")

    return f1


def _auc(positive: np.ndarray, scores: np.ndarray) -> WeightedMetric:
    """Weighted Mann-Whitney ROC-AUC with ties counted half; the sort happens once."""
    _, group = np.unique(scores, return_inverse=True)
    groups = int(group.max()) + 1 if group.size else 0
    positive = positive.astype(float)

    def auc(w: np.ndarray | None) -> float:
        weight = np.ones_like(positive) if w is None else np.asarray(w, dtype=float)
        pos = np.bincount(group, weights=weight * positive, minlength=groups)
        neg = np.bincount(group, weights=weight * (1 - positive), minlength=groups)
        total_pos, total_neg = pos.sum(), neg.sum()
        if total_pos == 0 or total_neg == 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float(pos @ (below + 0.5 * neg) / (total_pos * total_neg))

    return auc


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")
