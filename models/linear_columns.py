"""River's linear pipelines evaluated on feature columns, with the model's own weights and scaler state.

:func:`linear_plan` recognises the pipelines :func:`driftline.models.specs.build_model` builds for ``binary`` and
``regression`` (standardised numeric features and/or one-hot categorical ones, then ``LogisticRegression`` or
``LinearRegression``) and returns a :class:`LinearPlan`; anything else gives None (the caller scores row by row).
The plan repeats River's arithmetic in River's order, as whole-column operations: per numeric feature in the
pipeline's order ``(x - mean) / var ** 0.5`` (0 when the variance is 0), the dot product summed in the order of
the transformed dict (one-hot terms first, in the encoder's order; a missing feature adds nothing), plus the
intercept, then River's own sigmoid per row. So every score is the one ``predict_proba_one`` / ``predict_one``
gives, to the bit (tests/models/test_linear_columns.py checks it on random models and rows).

>>> from driftline.models.features import FeatureSchema
>>> from driftline.models.feature_columns import prepare_columns
>>> from driftline.models.specs import build_model
>>> schema = FeatureSchema({"x": "numeric", "c": "categorical"})
>>> model = build_model(schema, "binary")
>>> for i in range(50):
...     model.learn_one({"x": float(i % 3), "c": "ab"[i % 2]}, bool(i % 2))
>>> rows = [{"x": 1.0, "c": "b"}, {"c": "a"}, {"x": 2.0}]
>>> columns, _ = prepare_columns(schema, rows)
>>> p = linear_plan(model, "binary").positive_probabilities(columns)
>>> p.tolist() == [model.predict_proba_one(row)[True] for row in rows]
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import compose, linear_model, optim, preprocessing

from driftline.models.feature_columns import FeatureColumns
from driftline.models.specs import SelectPresent


@dataclass(frozen=True)
class LinearPlan:
    """Where a recognised pipeline keeps its state (read on every call: the model may have learned since)."""

    numeric: tuple[str, ...]
    scaler: Any
    categorical: tuple[str, ...]
    encoder: Any
    head: Any
    task: str

    def raw(self, columns: FeatureColumns) -> np.ndarray:
        """``weights · transformed(x) + intercept`` for every row, summed in River's order."""
        weights = self.head._weights
        if not all(map(math.isfinite, weights.values())):
            raise ArithmeticError("a weight is not finite: zero terms would not vanish")
        total = np.zeros(len(columns))
        if self.categorical:
            total = self._one_hot_sums(columns, weights)
        means, variances = (self.scaler.means, self.scaler.vars) if self.numeric else ({}, {})
        for name in self.numeric:
            x = columns.numeric[name]
            variance = variances.get(name, 0.0)
            scaled = (x - means.get(name, 0.0)) / variance**0.5 if variance else np.zeros(len(x))
            term = scaled * weights.get(name, 0.0)
            total = np.where(np.isnan(x), total, total + term)
        return total + self.head.intercept

    def _one_hot_sums(self, columns: FeatureColumns, weights: Any) -> np.ndarray:
        """The one-hot part of the dot product: each row's category weights, in the encoder's key order."""
        position = {key: i for i, key in enumerate(self.encoder._zero_dict)}
        unseen = len(position)
        n = len(columns)
        terms = np.zeros((n, len(self.categorical)))
        order = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, name in enumerate(self.categorical):
            for i, value in enumerate(columns.categorical[name]):
                if value is None:
                    order[i, j] = unseen + j
                    continue
                key = f"{name}_{value}"
                terms[i, j] = weights.get(key, 0.0)
                order[i, j] = position.get(key, unseen + j)
        terms = np.take_along_axis(terms, np.argsort(order, axis=1, kind="stable"), axis=1)
        total = np.zeros(n)
        for j in range(terms.shape[1]):
            total = total + terms[:, j]
        return total

    def positive_probabilities(self, columns: FeatureColumns) -> np.ndarray:
        """``predict_proba_one(row)[True]`` of every row (River's sigmoid, row by row: ``math.exp``, not numpy's)."""
        exp = math.exp
        return np.array(
            [0.0 if v < -30 else 1.0 if v > 30 else 1 / (1 + exp(-v)) for v in self.raw(columns).tolist()],
            dtype=np.float64,
        )


def pipeline_steps(pipeline: Any) -> list[Any]:
    return list(pipeline.steps.values()) if isinstance(pipeline, compose.Pipeline) else [pipeline]


def linear_plan(model: Any, task: str) -> LinearPlan | None:
    """The plan of ``model`` when it is a pipeline this module knows how to evaluate exactly, else None."""
    *features, head = pipeline_steps(model)
    heads = {
        "binary": (linear_model.LogisticRegression, optim.losses.Log),
        "regression": (linear_model.LinearRegression, optim.losses.Squared),
    }
    if task not in heads or (type(head), type(getattr(head, "loss", None))) != heads[task]:
        return None
    # [select, transformer] (one kind of feature) or [union of such pipelines] (both kinds)
    union = len(features) == 1 and isinstance(features[0], compose.TransformerUnion)
    parts = [pipeline_steps(part) for part in features[0].transformers.values()] if union else [features]
    found: dict[type, tuple[tuple[str, ...], Any]] = {}
    for part in parts:
        if len(part) != 2 or type(part[0]) is not SelectPresent:
            return None
        found[type(part[1])] = (part[0].ordered, part[1])
    scaler = found.pop(preprocessing.StandardScaler, ((), None))
    encoder = found.pop(preprocessing.OneHotEncoder, ((), None))
    if found or (scaler[1] is None and encoder[1] is None):
        return None
    if scaler[1] is not None and (not scaler[1].with_std or getattr(scaler[1], "window_size", None) is not None):
        return None
    if encoder[1] is not None:
        oh = encoder[1]
        if oh.categories is not None or oh.drop_zeros or oh.drop_first:
            return None
        # the union's dict takes the one-hot keys first (the plan sums them first) when the scaler comes first;
        # a one-hot key that is also another key (a numeric feature's name, or another category's one-hot key)
        # would merge two terms into one, which the plan does not do
        if len(parts) == 2 and type(parts[0][1]) is not preprocessing.StandardScaler:
            return None
        if any(n.startswith(f"{c}_") for n in scaler[0] + encoder[0] for c in encoder[0]):
            return None
    return LinearPlan(scaler[0], scaler[1], encoder[0], encoder[1], head, task)
