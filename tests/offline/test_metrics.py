"""The weighted numpy metrics agree with scikit-learn's, with and without sample weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, roc_auc_score

from driftline.offline.metrics import confusion, decide, score


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1).round(2)  # rounded: many ties
    return y, np.column_stack([1 - p, p]), rng.integers(0, 4, 500).astype(float)


@pytest.fixture
def multiclass() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 600)
    raw = rng.random((600, 4)) + np.eye(4)[y] * 0.5
    return y, raw / raw.sum(axis=1, keepdims=True), rng.integers(0, 3, 600).astype(float)


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_metrics_match_scikit_learn_including_ties(binary, weighted) -> None:
    """Accuracy, F1 of the positive class at a threshold, and tie-aware ROC-AUC equal scikit-learn's."""
    y, proba, w = binary
    weights = w if weighted else None
    decided = decide(proba, 0.4)
    assert score("accuracy", y, proba=proba, threshold=0.4, weights=weights) == pytest.approx(
        accuracy_score(y, decided, sample_weight=weights)
    )
    assert score("f1", y, proba=proba, threshold=0.4, weights=weights) == pytest.approx(
        f1_score(y, decided, sample_weight=weights)
    )
    assert score("roc_auc", y, proba=proba, weights=weights) == pytest.approx(
        roc_auc_score(y, proba[:, 1], sample_weight=weights)
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_metrics_match_scikit_learn_macro_averages(multiclass, weighted) -> None:
    """Macro F1 and one-vs-rest macro ROC-AUC of four classes equal scikit-learn's."""
    y, proba, w = multiclass
    weights = w if weighted else None
    assert score("f1", y, proba=proba, weights=weights) == pytest.approx(
        f1_score(y, proba.argmax(axis=1), average="macro", sample_weight=weights)
    )
    assert score("roc_auc", y, proba=proba, weights=weights) == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro", sample_weight=weights)
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_regression_metrics_match_scikit_learn(weighted) -> None:
    """RMSE and MAE with weights equal scikit-learn's."""
    rng = np.random.default_rng(3)
    y, pred, w = rng.normal(size=300), rng.normal(size=300), rng.integers(0, 3, 300).astype(float)
    weights = w if weighted else None
    assert score("rmse", y, pred=pred, weights=weights) == pytest.approx(
        np.sqrt(mean_squared_error(y, pred, sample_weight=weights))
    )
    assert score("mae", y, pred=pred, weights=weights) == pytest.approx(
        mean_absolute_error(y, pred, sample_weight=weights)
    )


def test_roc_auc_with_one_class_only_is_nan_not_an_error() -> None:
    """A resample (or slice) with a single class has no ROC-AUC: NaN."""
    assert np.isnan(score("roc_auc", np.zeros(3, dtype=int), proba=np.full((3, 2), 0.5)))


def test_confusion_counts_weighted_rows() -> None:
    """A row drawn twice counts twice in the confusion matrix."""
    matrix = confusion(np.array([0, 1]), np.array([1, 1]), 2, weights=np.array([2.0, 1.0]))
    assert matrix.tolist() == [[0.0, 2.0], [0.0, 1.0]]
