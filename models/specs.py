"""River model specs: the online pipeline for a feature schema and a task.

Numeric features are standardised, categorical ones one-hot encoded; every spec supports River's
mini-batch API (``predict_proba_many`` / ``predict_many`` / ``learn_many``) as well as the one-at-a-time one.

Examples
--------
>>> from models.features import FeatureSchema
>>> model = build_model(FeatureSchema({"x": "numeric", "c": "categorical"}), "binary")
>>> for i in range(200):
...     model.learn_one({"x": float(i % 2), "c": "ab"[i % 2]}, bool(i % 2))
>>> model.predict_one({"x": 1.0, "c": "b"})
True
>>> infer_task([0, 1, 1, 0]), infer_task(["a", "b", "c"]), infer_task([0.5, 1.7, 3.2])
('binary', 'multiclass', 'regression')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from river import compose, linear_model, multiclass, optim, preprocessing

from models.features import FeatureSchema

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")


def build_model(schema: FeatureSchema, task: Task, learning_rate: float = 0.01, l2: float = 0.0) -> Any:
    """A fresh River pipeline for ``schema`` that solves ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    parts = []
    if schema.numeric:
        parts.append(compose.Select(*schema.numeric) | preprocessing.StandardScaler())
    if schema.categorical:
        parts.append(compose.Select(*schema.categorical) | preprocessing.OneHotEncoder())
    if not parts:
        raise ValueError("a model needs at least one feature")
    features = parts[0] if len(parts) == 1 else compose.TransformerUnion(*parts)
    if task == "regression":
        head: Any = linear_model.LinearRegression(optimizer=optim.SGD(learning_rate), l2=l2)
    elif task == "binary":
        head = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate * 5), l2=l2)
    else:
        head = multiclass.OneVsRestClassifier(
            linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate * 5), l2=l2)
        )
    return features | head


def infer_task(target: Sequence[Any]) -> Task:
    """Binary for two classes, multiclass for strings/few integer classes, regression otherwise."""
    values = [v for v in target if v is not None]
    distinct = set(values)
    if len(distinct) <= 2:
        return "binary"
    if any(isinstance(v, str) for v in values):
        return "multiclass"
    if all(float(v).is_integer() for v in values) and len(distinct) <= 20:
        return "multiclass"
    return "regression"
