"""Why this score: exact per-feature contributions of River's linear models (pure, no I/O).

A linear head computes ``raw = intercept + sum_j weight_j * x_j`` on the pipeline's transformed features
``x`` (standardised numbers, one-hot categories), then the probability (``sigmoid(raw)``, binary) or the value
(regression). The contribution of a feature is ``weight * transformed value``; one-hot columns add up to their
categorical feature's contribution. So ``intercept + sum(contributions) == raw`` exactly (to float rounding):
the explanation is the model's own arithmetic, not an approximation. The pipelines
:func:`driftline.models.specs.build_model` builds for binary and regression tasks are explained a batch at a
time with numpy (the scaler's means and variances, the head's weights); other linear pipelines row by row. For a
one-vs-rest multiclass model the predicted class's classifier is explained (its logit). Other models (trees,
offline scikit-learn versions) get no online explanation (None); the offline report ranks their features by
permutation importance.

An explanation is a plain dict: ``method`` (``"linear"``), ``output`` (``"logit"``, ``"logit:CLASS"`` or
``"value"``), ``intercept``, ``contributions`` (the ``top_k`` largest in absolute value, largest first) and
``others`` (the sum of the remaining contributions).

Examples
--------
>>> from driftline.models.features import FeatureSchema
>>> from driftline.models.specs import build_model
>>> model = build_model(FeatureSchema({"x": "numeric", "noise": "numeric", "c": "categorical"}), "binary")
>>> for i in range(300):
...     model.learn_one({"x": float(i % 2), "noise": float(i % 7), "c": "ab"[i % 2]}, bool(i % 2))
>>> row = {"x": 1.0, "noise": 3.0, "c": "b"}
>>> e = explain_rows(model, "binary", [row], top_k=2)[0]
>>> e["output"], list(e["contributions"])
('logit', ['x', 'c'])
>>> raw = e["intercept"] + sum(e["contributions"].values()) + e["others"]
>>> p = model.predict_proba_one(row)[True]
>>> abs(1 / (1 + math.exp(-raw)) - p) < 1e-12
True
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from river import linear_model, multiclass

from driftline.models.linear_columns import LinearPlan, linear_plan, pipeline_steps

Explanation = dict[str, Any]


def _linear(head: Any) -> bool:
    return isinstance(head, linear_model.LogisticRegression | linear_model.LinearRegression)


def explainable(model: Any) -> bool:
    """True for a River pipeline ending in a linear head (or a one-vs-rest of linear heads).

    >>> from driftline.models.features import FeatureSchema
    >>> from driftline.models.specs import build_model
    >>> explainable(build_model(FeatureSchema({"x": "numeric"}), "multiclass")), explainable(object())
    (True, False)
    """
    head = pipeline_steps(model)[-1]
    if isinstance(head, multiclass.OneVsRestClassifier):
        return _linear(head.classifier)
    return _linear(head)


def _owner(key: str, row: Mapping[str, Any]) -> str:
    """The input feature a transformed key comes from: itself, or the categorical feature it one-hot encodes."""
    if key in row:
        return key
    owners = [name for name in row if key.startswith(f"{name}_")]
    return max(owners, key=len) if owners else key


def _explain(head: Any, transformed: Mapping[str, float], row: Mapping[str, Any], top_k: int) -> Explanation:
    weights = head.weights
    totals: dict[str, float] = {}
    for key, value in transformed.items():
        weight = weights.get(key, 0.0)
        if weight and value:
            owner = _owner(key, row)
            totals[owner] = totals.get(owner, 0.0) + weight * value
    top = heapq.nlargest(top_k, totals.items(), key=lambda kv: abs(kv[1]))
    kept = dict(top)
    others = math.fsum(v for k, v in totals.items() if k not in kept)
    return {"method": "linear", "intercept": float(head.intercept), "contributions": kept, "others": others}


def _explain_columns(plan: LinearPlan, rows: Sequence[Mapping[str, Any]], top_k: int) -> list[Explanation]:
    """The linear pipeline's contributions for the whole batch at once (numpy), as River computes them."""
    numeric, scaler, categorical, head = list(plan.numeric), plan.scaler, list(plan.categorical), plan.head
    output = "value" if plan.task == "regression" else "logit"
    weights, n = head.weights, len(rows)
    parts = []
    if numeric:
        x = np.array([[row.get(name, np.nan) for name in numeric] for row in rows], dtype=float).reshape(n, -1)
        means = np.array([scaler.means.get(name, 0.0) for name in numeric])
        std = np.sqrt(np.array([scaler.vars.get(name, 0.0) for name in numeric]))
        with np.errstate(invalid="ignore", divide="ignore"):
            scaled = np.where(std > 0, (x - means) / np.where(std > 0, std, 1.0), 0.0)
        scaled[np.isnan(x)] = 0.0
        parts.append(scaled * np.array([weights.get(name, 0.0) for name in numeric]))
    if categorical:
        parts.append(
            np.array(
                [[weights.get(f"{c}_{row[c]}", 0.0) if c in row else 0.0 for c in categorical] for row in rows],
                dtype=float,
            ).reshape(n, -1)
        )
    names = numeric + categorical
    terms = np.hstack(parts) if len(parts) > 1 else parts[0]
    k = min(top_k, len(names))
    top = np.argsort(-np.abs(terms), axis=1, kind="stable")[:, :k]
    rest = terms.copy()
    np.put_along_axis(rest, top, 0.0, axis=1)
    others = rest.sum(axis=1).tolist()
    intercept = float(head.intercept)
    found = []
    for i, columns in enumerate(top.tolist()):
        row_terms = terms[i]
        kept = {names[j]: float(row_terms[j]) for j in columns if row_terms[j] != 0.0}
        found.append(
            {"method": "linear", "intercept": intercept, "contributions": kept, "others": others[i], "output": output}
        )
    return found


def explain_rows(model: Any, task: str, rows: Sequence[Mapping[str, Any]], top_k: int) -> list[Explanation | None]:
    """The explanation of each prepared row (see the module docstring); None for every row of a model that is
    not a River linear pipeline, and for a multiclass row no classifier scores yet."""
    if top_k < 1 or not explainable(model) or not rows:
        return [None] * len(rows)
    plan = linear_plan(model, task)
    if plan is not None:
        return _explain_columns(plan, rows, top_k)
    steps = pipeline_steps(model)
    head = steps[-1]
    found: list[Explanation | None] = []
    for row in rows:
        transformed = model.transform_one(row) if len(steps) > 1 else dict(row)
        if isinstance(head, multiclass.OneVsRestClassifier):
            proba = model.predict_proba_one(row)
            if not proba or not head.classifiers:
                found.append(None)
                continue
            predicted = max(proba, key=proba.__getitem__)
            classifier = head.classifiers.get(predicted)
            if classifier is None:
                found.append(None)
                continue
            explanation = _explain(classifier, transformed, row, top_k)
            explanation["output"] = f"logit:{predicted}"
        else:
            explanation = _explain(head, transformed, row, top_k)
            explanation["output"] = "value" if task == "regression" else "logit"
        found.append(explanation)
    return found
