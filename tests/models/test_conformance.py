"""Conformance suite (in the spirit of ``river/checks``) applied to every model spec and feature-schema shape.

For each task in :data:`driftline.models.specs.TASKS` and schemas that are numeric-only, categorical-only and mixed:
pickle round trip gives identical predictions (and identical learning afterwards), the same seed gives the
same model, learning and predicting do not mutate their input, and :func:`driftline.models.scoring.score_batch` equals
one-at-a-time prediction.
"""

from __future__ import annotations

import copy
import pickle
import random
from typing import Any

import pandas as pd
import pytest

from driftline.models.features import FeatureSchema
from driftline.models.learner import OnlineLearner
from driftline.models.scoring import score_batch
from driftline.models.specs import TASKS, build_model

SCHEMAS = {
    "numeric": FeatureSchema({"a": "numeric", "b": "numeric"}),
    "categorical": FeatureSchema({"k": "categorical", "m": "categorical"}),
    "mixed": FeatureSchema({"a": "numeric", "b": "numeric", "k": "categorical"}),
}
CASES = [(task, shape) for task in TASKS for shape in SCHEMAS]
IDS = [f"{task}-{shape}" for task, shape in CASES]


def stream(schema: FeatureSchema, task: str, n: int, seed: int) -> list[tuple[dict[str, Any], Any]]:
    """n (x, y) pairs for ``schema``; the target depends on the features so models have something to learn."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x: dict[str, Any] = {}
        signal = 0.0
        for name in schema.numeric:
            x[name] = rng.gauss(0, 1)
            signal += x[name]
        for name in schema.categorical:
            x[name] = rng.choice("pqr")
            signal += {"p": -1.0, "q": 0.0, "r": 1.0}[x[name]]
        signal += rng.gauss(0, 0.3)
        if task == "binary":
            y: Any = signal > 0
        elif task == "multiclass":
            y = "low" if signal < -0.7 else ("high" if signal > 0.7 else "mid")
        else:
            y = 2.0 * signal + 1.0
        out.append((x, y))
    return out


def trained(task: str, shape: str, seed: int = 0, n: int = 300) -> Any:
    model = build_model(SCHEMAS[shape], task)
    for x, y in stream(SCHEMAS[shape], task, n, seed):
        model.learn_one(x, y)
    return model


def predictions(model: Any, task: str, xs: list[dict[str, Any]]) -> list[Any]:
    if task == "regression":
        return [model.predict_one(x) for x in xs]
    return [model.predict_proba_one(x) for x in xs]


def probe(task: str, shape: str) -> list[dict[str, Any]]:
    return [x for x, _ in stream(SCHEMAS[shape], task, 40, seed=99)]


@pytest.mark.parametrize(("task", "shape"), CASES, ids=IDS)
def test_pickle_round_trip_predicts_and_learns_identically(task: str, shape: str) -> None:
    """An unpickled model predicts exactly as the original, and stays identical after learning more."""
    model = trained(task, shape)
    clone = pickle.loads(pickle.dumps(model))
    xs = probe(task, shape)
    assert predictions(clone, task, xs) == predictions(model, task, xs)
    for x, y in stream(SCHEMAS[shape], task, 50, seed=7):
        model.learn_one(x, y)
        clone.learn_one(x, y)
    assert predictions(clone, task, xs) == predictions(model, task, xs)


@pytest.mark.parametrize(("task", "shape"), CASES, ids=IDS)
def test_same_seed_same_model(task: str, shape: str) -> None:
    """Two models built from the spec and fed the same seeded stream predict identically."""
    xs = probe(task, shape)
    assert predictions(trained(task, shape, seed=3), task, xs) == predictions(trained(task, shape, seed=3), task, xs)


@pytest.mark.parametrize(("task", "shape"), CASES, ids=IDS)
def test_learning_and_predicting_do_not_mutate_the_input(task: str, shape: str) -> None:
    """learn_one, predict_*_one, learn_many and predict_*_many leave their inputs unchanged."""
    model = trained(task, shape, n=50)
    pairs = stream(SCHEMAS[shape], task, 30, seed=5)
    for x, y in pairs:
        before = copy.deepcopy(x)
        model.learn_one(x, y)
        predictions(model, task, [x])
        assert x == before
    frame = pd.DataFrame([x for x, _ in pairs])
    target = pd.Series([y for _, y in pairs])
    frame_before, target_before = frame.copy(), target.copy()
    model.learn_many(frame, target)
    model.predict_many(frame) if task == "regression" else model.predict_proba_many(frame)
    pd.testing.assert_frame_equal(frame, frame_before)
    pd.testing.assert_series_equal(target, target_before)


@pytest.mark.parametrize(("task", "shape"), CASES, ids=IDS)
def test_score_batch_equals_one_at_a_time(task: str, shape: str) -> None:
    """score_batch (DataFrame path) gives the same predictions and probabilities as *_one per row."""
    model = trained(task, shape)
    xs = probe(task, shape)
    scored = score_batch(model, task, xs)
    for s, expected in zip(scored, predictions(model, task, xs), strict=True):
        assert s.error is None
        if task == "regression":
            assert s.prediction == pytest.approx(expected, rel=1e-9, abs=1e-12)
        else:
            assert s.probabilities == pytest.approx({str(c): p for c, p in expected.items()}, rel=1e-9, abs=1e-12)
            assert s.prediction == max(expected, key=expected.get)


@pytest.mark.parametrize(("task", "shape"), CASES, ids=IDS)
def test_untrained_model_scores_without_crashing(task: str, shape: str) -> None:
    """A fresh model scores a batch: every row gets a result and no error."""
    scored = score_batch(build_model(SCHEMAS[shape], task), task, probe(task, shape))
    assert len(scored) == 40 and all(s.error is None for s in scored)


@pytest.mark.parametrize(("task", "shape"), CASES, ids=IDS)
def test_online_learner_checkpoint_round_trip_keeps_predictions(task: str, shape: str) -> None:
    """The learner's signed checkpoint restores a model that predicts exactly like the original."""
    learner = OnlineLearner(build_model(SCHEMAS[shape], task), task)
    for i, (x, y) in enumerate(stream(SCHEMAS[shape], task, 200, seed=11)):
        learner.learn(f"e{i}", x, y)
    restored = OnlineLearner.restore(learner.checkpoint(hmac_key=b"k"), hmac_key=b"k")
    xs = probe(task, shape)
    assert predictions(restored.model, task, xs) == predictions(learner.model, task, xs)


@pytest.mark.parametrize(("task", "shape"), CASES, ids=IDS)
def test_rows_missing_features_are_learned_and_scored_like_one_at_a_time(task: str, shape: str) -> None:
    """Under the 'impute' policy absent features are tolerated: learning works and score_batch equals *_one,
    whether a few rows or every row of the batch lacks a feature."""
    model = trained(task, shape, n=100)
    first = next(iter(SCHEMAS[shape].kinds))
    partly = probe(task, shape)
    for x in partly[::4]:
        del x[first]
    entirely = [{k: v for k, v in x.items() if k != first} for x in probe(task, shape)]
    for x, y in stream(SCHEMAS[shape], task, 10, seed=12):
        x.pop(first)
        model.learn_one(x, y)
    for xs in (partly, entirely):
        for s, expected in zip(score_batch(model, task, xs), predictions(model, task, xs), strict=True):
            assert s.error is None
            if task == "regression":
                assert s.prediction == pytest.approx(expected, rel=1e-9, abs=1e-12)
            else:
                assert s.probabilities == pytest.approx({str(c): p for c, p in expected.items()}, rel=1e-9, abs=1e-12)
