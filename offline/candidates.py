"""Baselines and candidate models, each a scikit-learn-style estimator taking raw rows.

Every estimator is fitted on raw feature columns and integer class codes (``0..k-1``, for binary code 1 is
the positive class) or float targets, and exposes ``predict_proba`` (classification) or ``predict``
(regression). :class:`RiverEstimator` replays rows through ``schema.prepare`` into a
:func:`driftline.models.specs.build_model` pipeline — exactly what the stream does with an event.

Examples
--------
>>> import pandas as pd
>>> from driftline.models.features import FeatureSchema
>>> schema = FeatureSchema({"x": "numeric", "c": "categorical"})
>>> X = pd.DataFrame({"x": [0.0, 1.0] * 50, "c": ["a", "b"] * 50})
>>> y = np.array([0, 1] * 50)
>>> [name for name, _ in param_grid("hist_gradient_boosting", "binary")][:1]
['learning_rate=0.05, max_leaf_nodes=15']
>>> model = make_estimator("linear", {"C": 1.0}, schema=schema, task="binary", labels=[False, True], seed=0)
>>> model.fit(X, y).predict_proba(X.head(2)).argmax(axis=1).tolist()
[0, 1]
>>> river = RiverEstimator(schema.to_dict(), "binary", labels=[False, True], learning_rate=0.05)
>>> river.fit(X, y).predict_proba(X.head(2)).argmax(axis=1).tolist()
[0, 1]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from driftline.models.features import FeatureSchema
from driftline.models.specs import Task, build_model
from driftline.offline.metrics import decide
from driftline.offline.prepare import SchemaPreparer, build_preprocessor, categorical_mask, to_events

#: Small grids: the search runs on a bounded sample, and every point costs a fit.
GRIDS: dict[str, dict[str, dict[str, list[Any]]]] = {
    "linear": {"classification": {"C": [0.1, 1.0, 10.0]}, "regression": {"alpha": [0.1, 1.0, 10.0]}},
    "hist_gradient_boosting": {
        "classification": {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
        "regression": {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31]},
    },
    "random_forest": {
        "classification": {"min_samples_leaf": [1, 5]},
        "regression": {"min_samples_leaf": [1, 5]},
    },
    "river": {
        "classification": {"learning_rate": [0.005, 0.01, 0.05]},
        "regression": {"learning_rate": [0.001, 0.005, 0.01]},
    },
    "majority": {"classification": {}, "regression": {}},
    "mean": {"classification": {}, "regression": {}},
}


def param_grid(name: str, task: Task) -> list[tuple[str, dict[str, Any]]]:
    """(label, params) for every grid point of candidate ``name``."""
    grid = GRIDS[name]["regression" if task == "regression" else "classification"]
    keys = sorted(grid)
    points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    return [(", ".join(f"{k}={v}" for k, v in p.items()) or "default", p) for p in points]


def make_estimator(
    name: str,
    params: dict[str, Any],
    *,
    schema: FeatureSchema,
    task: Task,
    labels: Sequence[Any],
    seed: int,
    river_rows: int = 100_000,
    time_ordered: bool = False,
) -> Any:
    """A fresh, unfitted estimator for candidate ``name`` with ``params``."""
    regression = task == "regression"
    if name in ("majority", "mean"):
        head: Any = DummyRegressor(strategy="mean") if regression else DummyClassifier(strategy="prior")
        return Pipeline([("prepare", SchemaPreparer(schema.to_dict())), ("model", head)])
    if name == "always_positive":  # binary: predict the positive class (code 1) for every row
        return Pipeline(
            [("prepare", SchemaPreparer(schema.to_dict())), ("model", DummyClassifier(strategy="constant", constant=1))]
        )
    if name == "linear":
        head = Ridge(**params) if regression else LogisticRegression(max_iter=500, **params)
        return Pipeline([("prepare", build_preprocessor(schema, "linear")), ("model", head)])
    if name == "hist_gradient_boosting":
        common = {
            "max_iter": 200,
            "early_stopping": True,
            "random_state": seed,
            "categorical_features": categorical_mask(schema),
            **params,
        }
        head = HistGradientBoostingRegressor(**common) if regression else HistGradientBoostingClassifier(**common)
        return Pipeline([("prepare", build_preprocessor(schema, "tree")), ("model", head)])
    if name == "random_forest":
        common = {"n_estimators": 100, "n_jobs": 2, "random_state": seed, **params}
        head = RandomForestRegressor(**common) if regression else RandomForestClassifier(**common)
        preparer = build_preprocessor(schema, "linear")
        return Pipeline([("prepare", preparer), ("model", head)])
    if name == "river":
        return RiverEstimator(
            schema.to_dict(),
            task,
            labels=list(labels),
            max_rows=river_rows,
            time_ordered=time_ordered,
            seed=seed,
            **params,
        )
    raise ValueError(f"unknown candidate {name!r}")


class RiverEstimator(BaseEstimator):
    """A :func:`driftline.models.specs.build_model` pipeline trained by replaying rows through ``schema.prepare``.

    At most ``max_rows`` rows are replayed: the most recent ones when ``time_ordered``, otherwise an
    evenly drawn sample kept in its original order. Labels are replayed as the stream's learner receives
    them: the original class values (``bool`` "is the positive class" for binary), floats for regression.
    """

    def __init__(
        self,
        kinds: dict[str, str],
        task: Task,
        labels: list[Any] | None = None,
        learning_rate: float = 0.01,
        max_rows: int = 100_000,
        time_ordered: bool = False,
        seed: int = 0,
    ):
        self.kinds = kinds
        self.task = task
        self.labels = labels
        self.learning_rate = learning_rate
        self.max_rows = max_rows
        self.time_ordered = time_ordered
        self.seed = seed

    @property
    def schema(self) -> FeatureSchema:
        return FeatureSchema(self.kinds)

    def replay_positions(self, n: int) -> np.ndarray:
        """Which of ``n`` training rows are replayed, in replay order."""
        if n <= self.max_rows:
            return np.arange(n)
        if self.time_ordered:
            return np.arange(n - self.max_rows, n)
        rng = np.random.default_rng(self.seed)
        return np.sort(rng.choice(n, size=self.max_rows, replace=False))

    def river_label(self, code: Any) -> Any:
        """The label the stream's learner would receive for a class code (or target value)."""
        if self.task == "regression":
            return float(code)
        if self.task == "binary":
            return bool(code == 1)
        return (self.labels or [])[int(code)]

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> RiverEstimator:  # noqa: N803 - scikit-learn naming
        schema = self.schema
        positions = self.replay_positions(len(X))
        self.model_ = build_model(schema, self.task, learning_rate=self.learning_rate)
        self.replayed_rows_ = int(len(positions))
        targets = np.asarray(y)[positions]
        for event, target in zip(to_events(X.iloc[positions], schema), targets, strict=True):
            self.model_.learn_one(schema.prepare(event), self.river_label(target))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        schema = self.schema
        if self.task == "binary":
            keys: list[Any] = [False, True]
        else:
            keys = list(self.labels or [])
        out = np.empty((len(X), len(keys)))
        for i, event in enumerate(to_events(X, schema)):
            scores = self.model_.predict_proba_one(schema.prepare(event))
            out[i] = [scores.get(key, 0.0) for key in keys]
        totals = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / len(keys))
        return np.divide(out, totals, out=uniform, where=totals > 0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        if self.task != "regression":
            return np.argmax(self.predict_proba(X), axis=1)
        schema = self.schema
        return np.array([float(self.model_.predict_one(schema.prepare(e))) for e in to_events(X, schema)])


class AveragingEnsemble(BaseEstimator):
    """Averages the probabilities (classification) or predictions (regression) of fitted members."""

    def __init__(self, members: list[tuple[str, Any]], task: Task, n_classes: int | None = None):
        self.members = members
        self.task = task
        self.n_classes = n_classes

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> AveragingEnsemble:  # noqa: N803
        for _, member in self.members:
            member.fit(X, y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return np.mean([predictions(m, X, self.task, self.n_classes) for _, m in self.members], axis=0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        if self.task != "regression":
            return np.argmax(self.predict_proba(X), axis=1)
        return np.mean([m.predict(X) for _, m in self.members], axis=0)


def predictions(estimator: Any, X: pd.DataFrame, task: Task, n_classes: int | None = None) -> np.ndarray:  # noqa: N803
    """``(n, k)`` class probabilities for classification, ``(n,)`` predictions for regression.

    A scikit-learn estimator fitted on a subset of the ``n_classes`` codes gets zero columns for the rest.
    """
    if task == "regression":
        return np.asarray(estimator.predict(X), dtype=float)
    out = np.asarray(estimator.predict_proba(X), dtype=float)
    classes = getattr(estimator, "classes_", None)
    if n_classes is not None and classes is not None and out.shape[1] != n_classes:
        full = np.zeros((len(out), n_classes))
        full[:, np.asarray(classes, dtype=int)] = out
        return full
    return out


class TrainedModel:
    """A fitted estimator with what it takes to use it on raw rows: task, class values, decision threshold.

    This is what ``model.skops`` holds; ``predict`` returns original class values (or numbers).
    """

    def __init__(
        self, name: str, estimator: Any, task: Task, labels: list[Any], threshold: float | None, features: list[str]
    ):
        self.name = name
        self.estimator = estimator
        self.task = task
        self.labels = labels
        self.threshold = threshold
        self.features = features

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Class probabilities, columns in the order of :attr:`labels`."""
        return predictions(self.estimator, X, self.task, len(self.labels) or None)

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Original class values (at the cost-chosen threshold for binary) or regression predictions."""
        if self.task == "regression":
            return predictions(self.estimator, X, self.task, len(self.labels) or None)
        codes = decide(self.predict_proba(X), self.threshold)
        return np.asarray(self.labels, dtype=object)[codes]
