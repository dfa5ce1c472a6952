"""Global explanations of the chosen model on the locked test set: permutation importance, per-feature effects and,
for tree ensembles when the optional ``shap`` package is installed, mean absolute SHAP values.

* **Permutation importance** (Breiman; scikit-learn's ``permutation_importance`` defines it the same way): how
  much the primary metric worsens when one feature's column is shuffled, breaking its link with the target;
  ``repeats`` shuffles per feature, mean and standard deviation. Any model: only its predictions are used.
* **Effects** (partial dependence): the model's mean output (positive-class probability, or the prediction) when
  the feature is set to each value of a grid (quantiles, or the most frequent categories) on every test row.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> X = pd.DataFrame({"signal": rng.normal(size=600), "noise": rng.normal(size=600)})
>>> y = (X["signal"] > 0).astype(int).to_numpy()
>>> from sklearn.linear_model import LogisticRegression
>>> model = LogisticRegression().fit(X, y)
>>> ranked = permutation_importance(lambda frame: model.predict_proba(frame), X, y, "accuracy", "binary")
>>> [r["feature"] for r in ranked], ranked[0]["mean"] > 0.3 > abs(ranked[1]["mean"])
(['signal', 'noise'], True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from driftline.offline.metrics import HIGHER_IS_BETTER, score

#: Test rows the explanations use at most (above it, a random sample, stratified by class for classification).
MAX_ROWS = 5_000
#: Grid points of a numeric feature's effect curve, and categories shown of a categorical one.
EFFECT_POINTS = 20
EFFECT_CATEGORIES = 12

Predict = Callable[[pd.DataFrame], np.ndarray]


def _score(metric: str, task: str, y: np.ndarray, out: np.ndarray, threshold: float | None) -> float:
    if task == "regression":
        return score(metric, y, pred=out)
    return score(metric, y, proba=out, threshold=threshold)


def _sample(
    X: pd.DataFrame,  # noqa: N803
    y: np.ndarray,
    rows: int,
    seed: int,
    stratify: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """At most ``rows`` rows, drawn at random; with ``stratify``, every class keeps its share (a rare class is not
    left out of a permutation importance by chance) whenever each class has two rows or more.

    >>> y = np.array([0] * 990 + [1] * 10)
    >>> _, picked = _sample(pd.DataFrame({"x": range(1000)}), y, 100, seed=0, stratify=True)
    >>> int(picked.sum())
    1
    """
    if len(X) <= rows:
        return X, y
    from sklearn.model_selection import train_test_split

    classes_can_split = stratify and np.unique(y, return_counts=True)[1].min() >= 2
    pick, _ = train_test_split(
        np.arange(len(X)), train_size=rows, random_state=seed, stratify=y if classes_can_split else None
    )
    pick = np.sort(pick)
    return X.iloc[pick], y[pick]


def permutation_importance(
    predict: Predict,
    X: pd.DataFrame,  # noqa: N803 - the usual name of a feature table
    y: np.ndarray,
    metric: str,
    task: str,
    *,
    threshold: float | None = None,
    repeats: int = 5,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
) -> list[dict[str, Any]]:
    """Each feature's drop of ``metric`` when its column is shuffled (positive: the model relies on it), most
    important first: ``feature``, ``mean``, ``std``, ``repeats``, and the ``baseline`` metric."""
    X, y = _sample(X, y, max_rows, seed, stratify=task != "regression")  # noqa: N806
    rng = np.random.default_rng(seed)
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    baseline = _score(metric, task, y, predict(X), threshold)
    found = []
    for name in X.columns:
        drops = []
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[name] = X[name].to_numpy()[rng.permutation(len(X))]
            drops.append(sign * (baseline - _score(metric, task, y, predict(shuffled), threshold)))
        found.append(
            {
                "feature": str(name),
                "mean": float(np.mean(drops)),
                "std": float(np.std(drops)),
                "repeats": repeats,
                "baseline": baseline,
            }
        )
    return sorted(found, key=lambda r: -r["mean"])


def _output(out: np.ndarray, task: str) -> np.ndarray:
    """The number an effect curve shows: the prediction, P(positive), or the top-class probability."""
    if task == "regression":
        return np.asarray(out, dtype=float)
    return out[:, 1] if out.shape[1] == 2 else out.max(axis=1)


def feature_effect(
    predict: Predict,
    X: pd.DataFrame,  # noqa: N803
    feature: str,
    task: str,
    *,
    seed: int = 0,
    max_rows: int = 1000,
) -> dict[str, Any]:
    """Partial dependence of the model's output on ``feature``: ``values`` (grid or categories), ``mean``
    output at each, ``kind`` (numeric or categorical) and what the output is."""
    X, _ = _sample(X, np.zeros(len(X)), max_rows, seed)  # noqa: N806
    column = X[feature]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric:
        present = column.dropna().to_numpy(dtype=float)
        grid = np.unique(np.quantile(present, np.linspace(0.02, 0.98, EFFECT_POINTS))) if present.size else []
        values: Sequence[Any] = [float(v) for v in grid]
    else:
        values = [v for v in column.dropna().value_counts().index[:EFFECT_CATEGORIES]]
    means = []
    for value in values:
        forced = X.copy()
        forced[feature] = value
        means.append(float(np.mean(_output(predict(forced), task))))
    output = "prediction" if task == "regression" else "P(positive)" if task == "binary" else "top-class probability"
    return {
        "feature": feature,
        "kind": "numeric" if numeric else "categorical",
        "values": [v if numeric else str(v) for v in values],
        "mean": means,
        "output": output,
    }


def shap_importance(estimator: Any, X: pd.DataFrame, *, seed: int = 0, max_rows: int = 500) -> list[dict] | None:  # noqa: N803
    """Mean |SHAP value| per input feature of a scikit-learn tree ensemble (TreeExplainer, exact for trees), most
    important first; None when ``shap`` is not installed or the model is not a pipeline ending in trees."""
    try:
        import shap
    except ImportError:
        return None
    steps = getattr(estimator, "steps", None)
    if not steps:
        return None
    *prep, (_, model) = steps
    if not hasattr(model, "estimators_") and type(model).__name__ not in TREE_MODELS:
        return None
    X, _ = _sample(X, np.zeros(len(X)), max_rows, seed)  # noqa: N806
    transformed = X
    for _, step in prep:
        transformed = step.transform(transformed)
    try:
        values = shap.TreeExplainer(model).shap_values(np.asarray(transformed, dtype=float))
    except Exception:  # noqa: BLE001 - shap does not support this model: no SHAP section
        return None
    values = np.asarray(values)
    if values.ndim == 3:  # (rows, columns, classes) or (classes, rows, columns): the positive / all classes
        values = values[..., -1] if values.shape[-1] <= 2 and values.shape[0] == len(transformed) else values[-1]
    names = _output_names(prep, list(X.columns), values.shape[1])
    magnitude = np.abs(values).mean(axis=0)
    totals: dict[str, float] = {}
    for name, m in zip(names, magnitude.tolist(), strict=True):
        owner = next((c for c in sorted(X.columns, key=len, reverse=True) if name.startswith(str(c))), name)
        totals[str(owner)] = totals.get(str(owner), 0.0) + m
    return [{"feature": k, "mean_abs_shap": v} for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]


#: Tree models shap's TreeExplainer reads (beside anything with ``estimators_``).
TREE_MODELS = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")


def _output_names(prep: list[tuple[str, Any]], columns: list[str], width: int) -> list[str]:
    """Names of the transformed columns (scikit-learn's ``get_feature_names_out``), stripped of transformer
    prefixes; the input names when they cannot be had."""
    names: list[str] = columns
    for _, step in prep:
        try:
            names = [str(n).split("__", 1)[-1] for n in step.get_feature_names_out()]
        except (AttributeError, ValueError, TypeError):
            names = columns
    return names if len(names) == width else [f"column {i}" for i in range(width)]
