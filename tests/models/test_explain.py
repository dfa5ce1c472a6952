"""Online explanations of River linear models are the model's own arithmetic: the intercept plus every
contribution is the logit (binary, multiclass one-vs-rest) or the value (regression) the model computes."""

from __future__ import annotations

import math
import random

import pytest
from river import utils

from driftline.models.explain import explain_rows, explainable
from driftline.models.features import FeatureSchema
from driftline.models.specs import build_model

SCHEMA = FeatureSchema({"a": "numeric", "b": "numeric", "c": "numeric", "colour": "categorical"})


def trained(task: str, seed: int):
    rng = random.Random(seed)
    model = build_model(SCHEMA, task)
    for _ in range(400):
        row = {"a": rng.gauss(0, 1), "b": rng.gauss(5, 2), "c": rng.random(), "colour": rng.choice("rgb")}
        signal = 2 * row["a"] - row["b"] / 3 + (row["colour"] == "r")
        target = {"binary": signal > 0, "regression": signal, "multiclass": "xyz"[int(signal > 0) + (row["c"] > 0.7)]}
        model.learn_one(row, target[task])
    return model, rng


def rows(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        row = {"a": rng.gauss(0, 2), "b": rng.gauss(5, 4), "c": rng.random(), "colour": rng.choice("rgbq")}
        for name in rng.sample(sorted(row), rng.randrange(3)):  # absent features (imputed) and unseen "q"
            del row[name]
        out.append(row)
    return out


@pytest.mark.parametrize("seed", range(3))
def test_binary_contributions_sum_to_the_logit(seed: int) -> None:
    model, rng = trained("binary", seed)
    batch = rows(rng, 200)
    for row, e in zip(batch, explain_rows(model, "binary", batch, top_k=2), strict=True):
        raw = e["intercept"] + math.fsum(e["contributions"].values()) + e["others"]
        assert utils.math.sigmoid(raw) == pytest.approx(model.predict_proba_one(row)[True], rel=1e-12, abs=1e-15)
        assert len(e["contributions"]) <= 2 and e["output"] == "logit"
        sizes = [abs(v) for v in e["contributions"].values()]
        assert sizes == sorted(sizes, reverse=True) and set(e["contributions"]) <= set(row)


def test_regression_contributions_sum_to_the_value_and_multiclass_to_the_predicted_class_logit() -> None:
    model, rng = trained("regression", 7)
    batch = rows(rng, 100)
    for row, e in zip(batch, explain_rows(model, "regression", batch, top_k=10), strict=True):
        assert e["others"] == 0.0 and e["output"] == "value"
        value = e["intercept"] + math.fsum(e["contributions"].values())
        assert value == pytest.approx(model.predict_one(row), rel=1e-12, abs=1e-12)
    model, rng = trained("multiclass", 8)
    head = list(model.steps.values())[-1]
    for row, e in zip(batch, explain_rows(model, "multiclass", batch, top_k=1), strict=True):
        predicted = e["output"].removeprefix("logit:")
        proba = model.predict_proba_one(row)
        assert predicted == max(proba, key=proba.get)
        raw = e["intercept"] + math.fsum(e["contributions"].values()) + e["others"]
        expected = head.classifiers[predicted].predict_proba_one(model.transform_one(row))[True]
        assert utils.math.sigmoid(raw) == pytest.approx(expected, rel=1e-12)


def test_a_category_s_one_hot_column_counts_for_its_feature_and_other_models_get_none() -> None:
    model, _ = trained("binary", 1)
    red, unseen = explain_rows(model, "binary", [{"colour": "r"}, {"colour": "q"}], top_k=5)
    head = list(model.steps.values())[-1]
    assert red["contributions"] == {"colour": head.weights["colour_r"]}
    assert unseen["contributions"] == {} and unseen["others"] == 0.0  # a category never learned weighs nothing
    assert explain_rows(object(), "binary", [{"a": 1.0}], top_k=3) == [None]
    assert explain_rows(model, "binary", [{"a": 1.0}], top_k=0) == [None]
    assert not explainable(object())
