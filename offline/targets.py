"""Target encoding: class values to integer codes (binary: the card's positive class is code 1), or floats.

Examples
--------
>>> import pandas as pd
>>> codes, labels = encode_target(pd.Series(["spam", "ham", "spam"]), "binary", positive_class="spam")
>>> codes.tolist(), labels
([1, 0, 1], ['ham', 'spam'])
>>> encode_target(pd.Series([2, 0, 1, 2]), "multiclass")[0].tolist()
[2, 0, 1, 2]
>>> encode_target(pd.Series([1, 2]), "regression")
(array([1., 2.]), [])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from driftline.offline.errors import OfflineError


def native(value: Any) -> Any:
    """A numpy scalar as the Python value an event or label would carry.

    >>> type(native(np.int64(3))).__name__
    'int'
    """
    return value.item() if isinstance(value, np.generic) else value


def class_labels(values: pd.Series, task: str, positive_class: Any = None) -> list[Any]:
    """Class values in code order: sorted, except that for binary the positive class comes last (code 1)."""
    distinct = [native(v) for v in pd.unique(values.dropna())]
    try:
        labels = sorted(distinct)
    except TypeError:
        labels = sorted(distinct, key=str)
    if task == "binary":
        positive = [v for v in labels if str(v) == str(positive_class)]
        if len(labels) != 2 or len(positive) != 1:
            raise OfflineError(f"a binary target needs two values, one of them the positive class {positive_class!r}")
        labels = [v for v in labels if v is not positive[0]] + positive
    return labels


def encode_target(values: pd.Series, task: str, positive_class: Any = None) -> tuple[np.ndarray, list[Any]]:
    """``(codes, labels)`` for classification, ``(floats, [])`` for regression (no missing values allowed)."""
    if task == "regression":
        return values.astype(float).to_numpy(), []
    labels = class_labels(values, task, positive_class)
    code_of = {label: i for i, label in enumerate(labels)}
    codes = values.map(lambda v: code_of[native(v)]).to_numpy(dtype=int)
    return codes, labels
