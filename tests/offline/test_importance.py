"""Global explanations: on a synthetic set where one planted feature decides the target among noise features,
permutation importance on the test set ranks it first (through `offline train`), its effect curve rises, and
SHAP (when installed) agrees for a tree model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from driftline.models.features import FeatureSchema
from driftline.offline.candidates import make_estimator, predictions
from driftline.offline.framing import SplitPlan, TrainingPlan, draft_card
from driftline.offline.importance import feature_effect, permutation_importance, shap_importance
from driftline.offline.train import train_frame


def planted(n: int = 1500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"noise_{i}": rng.normal(size=n) for i in range(6)})
    frame["colour"] = rng.choice(["red", "green", "blue"], n)  # categorical noise
    frame["planted"] = rng.normal(size=n)
    frame["label"] = np.where(frame["planted"] + rng.normal(scale=0.3, size=n) > 0.2, "yes", "no")
    return frame


def test_offline_train_ranks_the_planted_feature_first_and_draws_its_effect(tmp_path) -> None:
    df = planted()
    card = dataclasses.replace(
        draft_card(df, "label"),
        split=SplitPlan(folds=3),
        training=TrainingPlan(candidates=("linear", "hist_gradient_boosting"), bootstrap=100, search_rows=1000),
    )
    metrics = train_frame(df, card, tmp_path / "run").metrics
    ranked = metrics["explanations"]["permutation_importance"]
    assert [r["feature"] for r in ranked][0] == "planted"
    assert ranked[0]["mean"] > 0.2 and all(abs(r["mean"]) < 0.05 for r in ranked[1:])
    assert len(ranked) == 8
    effect = metrics["explanations"]["effects"][0]
    assert effect["feature"] == "planted" and effect["mean"][-1] - effect["mean"][0] > 0.5  # P(yes) rises
    html = (tmp_path / "run" / "report.html").read_text()
    assert "What the model relies on" in html and "all 8 features" in html


def test_shap_agrees_for_a_tree_model_when_installed() -> None:
    pytest.importorskip("shap")
    df = planted(800)
    X, y = df.drop(columns="label"), (df["label"] == "yes").astype(int).to_numpy()  # noqa: N806
    schema = FeatureSchema.infer(X.to_dict("records"))
    model = make_estimator(
        "hist_gradient_boosting", {}, schema=schema, task="binary", labels=["no", "yes"], seed=0
    ).fit(X, y)
    rows = shap_importance(model, X)
    assert rows is not None and rows[0]["feature"] == "planted"
    assert {r["feature"] for r in rows} <= set(X.columns)
    assert (
        shap_importance(
            make_estimator("majority", {}, schema=schema, task="binary", labels=[0, 1], seed=0).fit(X, y), X
        )
        is None
    )


def test_a_categorical_effect_has_one_point_per_category_and_importance_works_for_regression() -> None:
    df = planted(600)
    X = df.drop(columns="label")  # noqa: N806
    y = 3 * X["planted"].to_numpy() + (X["colour"] == "red") * 2.0
    schema = FeatureSchema.infer(X.to_dict("records"))
    model = make_estimator("linear", {}, schema=schema, task="regression", labels=[], seed=0).fit(X, y)
    ranked = permutation_importance(lambda f: predictions(model, f, "regression"), X, y, "rmse", "regression")
    assert [r["feature"] for r in ranked[:2]] == ["planted", "colour"]
    effect = feature_effect(lambda f: predictions(model, f, "regression"), X, "colour", "regression")
    assert effect["kind"] == "categorical" and sorted(effect["values"]) == ["blue", "green", "red"]
    red = effect["mean"][effect["values"].index("red")]
    assert red - effect["mean"][effect["values"].index("blue")] == pytest.approx(2.0, abs=0.2)
