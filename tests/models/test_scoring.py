"""Batch scoring: mini-batch path equals one-at-a-time, missing values, untrained models, per-row errors."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import pandas as pd
import pytest
from river import linear_model, multiclass, preprocessing, tree

from driftline.models.features import FeatureSchema
from driftline.models.scoring import Scored, from_probabilities, score_batch, score_frame
from driftline.models.specs import build_model

SCHEMA = FeatureSchema({"x": "numeric", "y": "numeric", "c": "categorical"})


def label(task: str, x: dict[str, Any]) -> Any:
    if task == "binary":
        return x["x"] + (x.get("c") == "a") > 1.0
    if task == "multiclass":
        return "lo" if x["x"] < 0.7 else ("mid" if x["x"] < 1.4 else "hi")
    return 3 * x["x"] - x["y"] + (x.get("c") == "b")


def rows(n: int, seed: int = 0, categorical: bool = True) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = [{"x": rng.uniform(0, 2), "y": rng.gauss(0, 1), "c": rng.choice("abc")} for _ in range(n)]
    return out if categorical else [{"x": r["x"], "y": r["y"]} for r in out]


def trained(model: Any, task: str, n: int = 300, categorical: bool = True) -> Any:
    for x in rows(n, seed=1, categorical=categorical):
        model.learn_one(x, label(task, x))
    return model


def tolerant_model(task: str) -> Any:
    """A River pipeline with a mini-batch path that accepts absent features (no Select step)."""
    features = preprocessing.StandardScaler()
    if task == "regression":
        return features | linear_model.LinearRegression()
    if task == "binary":
        return features | linear_model.LogisticRegression()
    return features | multiclass.OneVsRestClassifier(linear_model.LogisticRegression())


def one_at_a_time(model: Any, task: str, batch: list[dict[str, Any]]) -> list[Any]:
    if task == "regression":
        return [model.predict_one(x) for x in batch]
    return [model.predict_proba_one(x) for x in batch]


def assert_matches(task: str, scored: list[Scored], expected: list[Any]) -> None:
    assert len(scored) == len(expected)
    for s, e in zip(scored, expected, strict=True):
        assert s.error is None
        if task == "regression":
            assert s.prediction == pytest.approx(e, rel=1e-9)
            assert s.score == s.prediction and s.probabilities is None and s.confidence is None
        else:
            assert s.probabilities == pytest.approx({str(k): v for k, v in e.items()}, rel=1e-9)
            assert str(s.prediction) == max(s.probabilities, key=s.probabilities.get)
            assert s.confidence == pytest.approx(max(e.values()))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_batch_of_complete_rows_equals_one_at_a_time(task: str) -> None:
    """For each task, the DataFrame mini-batch result equals predict_proba_one/predict_one row by row."""
    model = trained(build_model(SCHEMA, task), task)
    batch = rows(50, seed=2)
    assert_matches(task, score_batch(model, task, batch), one_at_a_time(model, task, batch))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_rows_with_missing_keys_are_scored_like_predict_one(task: str) -> None:
    """Rows missing a feature are scored exactly like *_one would; complete rows still go through the frame."""
    model = trained(tolerant_model(task), task, categorical=False)
    batch = rows(40, seed=3, categorical=False)
    for i in range(0, 40, 3):
        del batch[i]["x" if i % 2 else "y"]
    assert_matches(task, score_batch(model, task, batch), one_at_a_time(model, task, batch))


def test_rivers_dataframe_path_turns_missing_values_into_nan() -> None:
    """Why missing rows go one at a time: a NaN in the frame gives NaN probabilities from predict_proba_many."""
    model = trained(tolerant_model("binary"), "binary", categorical=False)
    frame = pd.DataFrame.from_records([{"x": 1.0, "y": 0.0}, {"y": 0.0}])
    proba = model.predict_proba_many(frame).to_numpy()
    assert not math.isnan(proba[0, 0]) and math.isnan(proba[1, 0])
    scored = score_batch(model, "binary", [{"x": 1.0, "y": 0.0}] * 4 + [{"y": 0.0}])
    assert all(s.error is None and not math.isnan(s.confidence) for s in scored)


def test_untrained_multiclass_model_predicts_none_with_empty_probabilities() -> None:
    """A multiclass model that saw no label yet scores every row as prediction None, {} and no confidence."""
    model = build_model(SCHEMA, "multiclass")
    for scored in score_batch(model, "multiclass", rows(10)):
        assert scored == Scored(None, {}, None, None)


def test_untrained_binary_model_gives_even_probabilities() -> None:
    """A fresh binary logistic regression says 0.5/0.5 (its classes are fixed) and predicts False."""
    scored = score_batch(build_model(SCHEMA, "binary"), "binary", rows(6))
    assert {s.probabilities["True"] for s in scored} == {0.5}
    assert {s.prediction for s in scored} == {False}


def test_model_without_batch_methods_is_scored_one_at_a_time() -> None:
    """A Hoeffding tree lacks predict_proba_many: results equal predict_proba_one's."""
    model = trained(tree.HoeffdingTreeClassifier(grace_period=50), "multiclass", n=400)
    batch = rows(20, seed=4)
    assert_matches("multiclass", score_batch(model, "multiclass", batch), one_at_a_time(model, "multiclass", batch))


class Flaky:
    """A classifier whose batch path always fails and whose one-row path fails for negative x."""

    def predict_proba_many(self, frame: pd.DataFrame) -> pd.DataFrame:
        raise RuntimeError("batch path broken")

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        if x["x"] < 0:
            raise ValueError("negative x")
        return {"a": 0.25, "b": 0.75}


def test_a_failing_row_gets_an_error_and_the_rest_of_the_batch_is_scored() -> None:
    """The batch path failing falls back to rows; a row that fails alone carries error, others are scored."""
    batch = [{"x": 1.0}, {"x": -1.0}, {"x": 2.0}, {"x": 3.0}, {"x": 4.0}]
    scored = score_batch(Flaky(), "multiclass", batch)
    assert scored[1] == Scored(None, None, None, None, error="ValueError: negative x")
    assert [s.prediction for s in scored[:1] + scored[2:]] == ["b"] * 4


def test_results_keep_input_order_when_complete_and_incomplete_rows_mix() -> None:
    """Interleaved complete and incomplete rows come back in input order."""
    model = trained(tolerant_model("regression"), "regression", categorical=False)
    batch = rows(12, seed=5, categorical=False)
    for i in (1, 4, 7, 10):
        batch[i]["y"] = None
    expected = [model.predict_one({k: v for k, v in x.items() if v is not None}) for x in batch]
    for i in (1, 4, 7, 10):
        del batch[i]["y"]
    assert [s.prediction for s in score_batch(model, "regression", batch)] == pytest.approx(expected)


def test_scored_values_are_plain_python_and_json_serializable() -> None:
    """Predictions from the DataFrame path are plain bools/floats (no numpy scalars): json.dumps works."""
    model = trained(build_model(SCHEMA, "binary"), "binary")
    scored = score_batch(model, "binary", rows(8))
    assert all(type(s.prediction) is bool for s in scored)
    json.dumps([dataclasses.asdict(s) for s in scored])


def test_empty_batch_and_unknown_task() -> None:
    """No rows give no results; an unknown task is a ValueError."""
    assert score_batch(build_model(SCHEMA, "binary"), "binary", []) == []
    with pytest.raises(ValueError, match="unknown task"):
        score_batch(build_model(SCHEMA, "binary"), "ranking", rows(2))


class Counting:
    """Delegates to a River model and counts how many rows each scoring path saw."""

    def __init__(self, model: Any):
        self.model = model
        self.batch_rows = 0
        self.single_rows = 0

    def predict_proba_many(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.batch_rows += len(frame)
        return self.model.predict_proba_many(frame)

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        self.single_rows += 1
        return self.model.predict_proba_one(x)


def test_complete_rows_take_the_batch_path_and_only_incomplete_rows_go_one_at_a_time() -> None:
    """Of 30 rows with 5 missing a key, 25 are scored in one DataFrame and 5 individually."""
    model = Counting(trained(tolerant_model("binary"), "binary", categorical=False))
    batch = rows(30, seed=6, categorical=False)
    for i in range(0, 30, 6):
        del batch[i]["y"]
    score_batch(model, "binary", batch)
    assert (model.batch_rows, model.single_rows) == (25, 5)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_the_frame_path_builds_exactly_what_from_probabilities_builds_for_each_row(task: str) -> None:
    """score_frame does the per-row work of from_probabilities once per batch: same Scored, field for field."""
    model = trained(build_model(SCHEMA, task), task)
    batch = rows(50, seed=4)
    proba = model.predict_proba_many(pd.DataFrame.from_records(batch))
    expected = [
        from_probabilities(task, dict(zip(proba.columns, line, strict=True)))
        for line in proba.to_numpy(dtype=float).tolist()
    ]
    assert score_frame(model, task, batch) == expected
