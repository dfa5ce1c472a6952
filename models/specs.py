"""River model specs: the online pipeline for a feature schema and a task.

Numeric features are standardised, categorical ones one-hot encoded, absent (imputed) features tolerated;
every spec supports River's mini-batch API (``predict_proba_many`` / ``predict_many`` / ``learn_many``) as well
as the one-at-a-time one.

Examples
--------
>>> from driftline.models.features import FeatureSchema, category_text
>>> model = build_model(FeatureSchema({"x": "numeric", "c": "categorical"}), "binary")
>>> for i in range(200):
...     model.learn_one({"x": float(i % 2), "c": "ab"[i % 2]}, bool(i % 2))
>>> model.predict_one({"x": 1.0, "c": "b"}), model.predict_one({"c": "b"}), model.predict_one({})
(True, True, False)
>>> infer_task([0, 1, 1, 0]), infer_task(["a", "b", "c"]), infer_task([0.5, 1.7, 3.2])
('binary', 'multiclass', 'regression')

A stray label does not decide the task: one ``2`` among a thousand 0/1 labels leaves the task binary (the stray
is reported, and the learner rejects labels like it):

>>> print(infer_task_of([0, 1] * 500 + [2]).describe())
binary from 1001 labels (classes 0, 1); 1 stray label (2: 1) does not fit and is rejected
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from river import compose, linear_model, multiclass, optim, preprocessing

from driftline.models.features import FeatureSchema, category_text

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


#: A label value rarer than this share of the labels is a stray (a typo, a bad row), not a class.
STRAY_SHARE = 0.01
#: A value at least this common is a class; between the two shares the task is ambiguous.
CLASS_SHARE = 0.05
#: Integer labels with more distinct values than this are a regression target.
MAX_CLASSES = 20


class AmbiguousTask(ValueError):
    """The labels do not say which task they are for; the message names the values and how to decide."""


@dataclass(frozen=True)
class TaskInference:
    """The task the labels agree on, the classes kept and the stray labels that do not fit it."""

    task: Task
    labels: int
    classes: tuple[str, ...] = ()
    #: value (as text) -> count of the labels that do not fit the task
    strays: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        classes = f" (classes {', '.join(self.classes)})" if self.classes else ""
        line = f"{self.task} from {self.labels} labels{classes}"
        if self.strays:
            count = sum(self.strays.values())
            values = ", ".join(f"{v}: {n}" for v, n in sorted(self.strays.items(), key=lambda kv: -kv[1])[:5])
            line += f"; {count} stray label{'s' if count > 1 else ''} ({values}) does not fit and is rejected"
            if count > 1:
                line = line.replace("does not fit and is", "do not fit and are")
        return line

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "labels": self.labels, "classes": list(self.classes), "strays": dict(self.strays)}


def infer_task_of(target: Sequence[Any]) -> TaskInference:
    """The task most labels agree on (missing labels ignored).

    Texts and numbers: the more common kind wins, the other is stray. Numbers with fractions (more than
    :data:`STRAY_SHARE` of the labels) or more than :data:`MAX_CLASSES` integer values are a regression target.
    Otherwise each value at least :data:`CLASS_SHARE` of the labels is a class (two or fewer: binary, more:
    multiclass) and each value under :data:`STRAY_SHARE` a stray; a value in between raises
    :class:`AmbiguousTask`, whose message says what to set.

    >>> infer_task_of(["yes", "no"] * 300 + ["maybe"] * 20).task  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftline.models.specs.AmbiguousTask: the labels do not say the task: 'maybe' is 3.2% of 620 labels (a class ...
    >>> infer_task_of([1.5, 2.25, 3.0, "n/a"] * 100).strays
    {'n/a': 100}
    """
    return task_from_counts(Counter(v for v in target if v is not None))


def task_from_counts(counts: Mapping[Any, int]) -> TaskInference:
    """:func:`infer_task_of` from each label value's count (a table's ``value_counts``)."""
    n = sum(counts.values())
    if not n:
        raise AmbiguousTask("no labels to infer the task from: set the task explicitly")
    texts = {v: c for v, c in counts.items() if isinstance(v, str)}
    numbers = {v: c for v, c in counts.items() if not isinstance(v, str)}
    kept, stray_kind = (texts, numbers) if sum(texts.values()) > sum(numbers.values()) else (numbers, texts)
    strays: Counter[str] = Counter()
    for value, count in stray_kind.items():
        strays[category_text(value)] += count
    if kept is numbers:
        fractional = sum(c for v, c in numbers.items() if not isinstance(v, bool) and not float(v).is_integer())
        if fractional >= STRAY_SHARE * n or len(numbers) > MAX_CLASSES:
            return TaskInference("regression", n, (), dict(strays))
    by_text: Counter[str] = Counter()
    for value, count in kept.items():
        by_text[category_text(value)] += count
    classes = sorted(value for value, count in by_text.items() if count >= CLASS_SHARE * n)
    unclear = sorted(value for value, count in by_text.items() if STRAY_SHARE * n <= count < CLASS_SHARE * n)
    if unclear:
        value = unclear[0]
        raise AmbiguousTask(
            f"the labels do not say the task: {value!r} is {by_text[value] / n:.1%} of {n} labels (a class if "
            f"{CLASS_SHARE:.0%} or more, a stray if under {STRAY_SHARE:.0%}): set the task (binary or multiclass) "
            "explicitly"
        )
    strays.update({value: count for value, count in by_text.items() if count < STRAY_SHARE * n})
    return TaskInference("binary" if len(classes) <= 2 else "multiclass", n, tuple(classes), dict(strays))


def infer_task(target: Sequence[Any]) -> Task:
    """The task of :func:`infer_task_of`: binary for two classes, multiclass for more, regression for numbers."""
    return infer_task_of(target).task
