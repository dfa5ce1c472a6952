"""River model specs: the online pipeline for a feature schema and a task.

Numeric features are standardised, categorical ones one-hot encoded, absent (imputed) features tolerated;
every spec supports River's mini-batch API (``predict_proba_many`` / ``predict_many`` / ``learn_many``) as well
as the one-at-a-time one.

Examples
--------
>>> from driftline.models.features import FeatureSchema
>>> model = build_model(FeatureSchema({"x": "numeric", "c": "categorical"}), "binary")
>>> for i in range(200):
...     model.learn_one({"x": float(i % 2), "c": "ab"[i % 2]}, bool(i % 2))
>>> model.predict_one({"x": 1.0, "c": "b"}), model.predict_one({"c": "b"}), model.predict_one({})
(True, True, False)
>>> infer_task([0, 1, 1, 0]), infer_task(["a", "b", "c"]), infer_task([0.5, 1.7, 3.2])
('binary', 'multiclass', 'regression')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from river import compose, linear_model, multiclass, optim, preprocessing

from driftline.models.features import FeatureSchema

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")


class SelectPresent(compose.Select):
    """``compose.Select`` that skips absent keys instead of raising (keeps River's mini-batch support).

    Features come out in a fixed (sorted) order: River keeps the keys in a set, whose iteration order may change
    when the model is pickled and loaded, and the order of the downstream sums changes the last bits of a score.

    >>> select = SelectPresent("b", "a", "c")
    >>> list(select.transform_one({"c": 3, "a": 1, "z": 0}))
    ['a', 'c']
    """

    def __init__(self, *keys: Any):
        super().__init__(*keys)
        self.ordered = tuple(sorted(self.keys, key=str))

    def __setstate__(self, state: dict) -> None:  # models pickled before ``ordered`` existed
        self.__dict__.update(state)
        self.__dict__.setdefault("ordered", tuple(sorted(self.keys, key=str)))

    def transform_one(self, x: dict) -> dict:
        return {key: x[key] for key in self.ordered if key in x}

    def transform_many(self, X: Any) -> Any:  # noqa: N803 - River's naming
        return X[[key for key in self.ordered if key in X.columns]]


def build_model(schema: FeatureSchema, task: Task, learning_rate: float = 0.01, l2: float = 0.0) -> Any:
    """A fresh River pipeline for ``schema`` that solves ``task``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if not schema.kinds:
        raise ValueError("a model needs at least one feature")
    # An absent (imputed) numeric feature scales to 0, its running mean; an absent category encodes to all zeros.
    parts = []
    if schema.numeric:
        parts.append(SelectPresent(*schema.numeric) | preprocessing.StandardScaler())
    if schema.categorical:
        parts.append(SelectPresent(*schema.categorical) | preprocessing.OneHotEncoder())
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
