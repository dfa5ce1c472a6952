"""Candidates and selection: River replay as the stream learns, search, k-fold CV, ensemble, choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.models.features import FeatureSchema
from driftline.models.specs import build_model
from driftline.offline.candidates import AveragingEnsemble, RiverEstimator, TrainedModel
from driftline.offline.metrics import score
from driftline.offline.selection import SelectionSetup, best, candidate_order, select_model

SCHEMA = FeatureSchema({"x": "numeric", "z": "numeric", "c": "categorical"})


def data(n: int = 400, seed: int = 0, classes: int = 2) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "c": rng.choice(list("abc"), size=n)})
    signal = X["x"] + 0.5 * (X["c"] == "a") + rng.normal(scale=0.7, size=n)
    y = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    X.loc[rng.random(n) < 0.05, "z"] = np.nan
    return X, y


def setup(task: str = "binary", labels: list | None = None, **kw) -> SelectionSetup:
    return SelectionSetup(
        schema=SCHEMA,
        task=task,
        metric=kw.pop("metric", "accuracy"),
        labels=labels or [0, 1],
        folds=kw.pop("folds", 3),
        strategy=kw.pop("strategy", "stratified"),
        seed=0,
        **kw,
    )


def test_river_estimator_learns_exactly_like_the_stream_replay_of_the_same_rows() -> None:
    """Fitting replays schema.prepare(event) -> learn_one(bool label); a hand-written stream loop over the same
    events gives the same model, so the same probabilities."""
    X, y = data(200)
    river = RiverEstimator(SCHEMA.to_dict(), "binary", labels=[0, 1]).fit(X, y)
    stream = build_model(SCHEMA, "binary")
    for (_, row), label in zip(X.iterrows(), y, strict=True):
        event = {k: (None if pd.isna(v) else v) for k, v in row.items()}
        stream.learn_one(SCHEMA.prepare(event), bool(label == 1))
    probe = {"x": 0.3, "c": "a"}  # z missing
    assert river.model_.predict_proba_one(probe) == stream.predict_proba_one(probe)


def test_river_replay_is_bounded_and_takes_the_most_recent_rows_in_time_order() -> None:
    """With max_rows 50 of 200 time-ordered rows, the last 50 are replayed in order."""
    X, y = data(200)
    river = RiverEstimator(SCHEMA.to_dict(), "binary", labels=[0, 1], max_rows=50, time_ordered=True).fit(X, y)
    assert river.replayed_rows_ == 50
    assert river.replay_positions(200).tolist() == list(range(150, 200))
    shuffled = RiverEstimator(SCHEMA.to_dict(), "binary", max_rows=50).replay_positions(200)
    assert len(shuffled) == 50 and (np.diff(shuffled) > 0).all()


def test_selection_runs_baselines_first_and_never_chooses_the_majority_baseline() -> None:
    """Order: majority, linear, then candidates; the choice is the best CV mean among non-trivial models."""
    X, y = data()
    names = candidate_order("binary", ["hist_gradient_boosting", "linear"])
    assert names == ["majority", "linear", "hist_gradient_boosting"]
    result = select_model(X, y, names, setup())
    assert [r.name for r in result.results] == names
    assert result.chosen.name != "majority"
    assert result.chosen.cv_mean == max(r.cv_mean for r in result.results if r.name != "majority")
    assert all(len(r.cv_scores) == 3 for r in result.results)


def test_search_keeps_the_parameters_with_the_best_validation_score() -> None:
    """River's learning-rate search records each grid point; the kept one has the best validation score."""
    X, y = data()
    result = select_model(X, y, ["river"], setup())
    river = result.results[0]
    assert len(river.search) == 3
    top = max(river.search, key=lambda s: s["validation"])
    assert top["params"] == f"learning_rate={river.params['learning_rate']}"


def test_ensemble_cv_equals_refitting_the_averaging_ensemble_on_each_fold() -> None:
    """The ensemble's CV (averaged out-of-fold outputs) equals fitting AveragingEnsemble fold by fold."""
    X, y = data()
    s = setup(ensemble=True)
    result = select_model(X, y, ["linear", "hist_gradient_boosting"], s)
    ensemble = next(r for r in result.results if r.name == "ensemble")
    members = [m["name"] for m in ensemble.params["members"]]
    assert sorted(members) == ["hist_gradient_boosting", "linear"]
    by_name = {r.name: r for r in result.results}
    for (train, val), cv in zip(result.folds, ensemble.cv_scores, strict=True):
        refit = AveragingEnsemble([(n, s.estimator(n, by_name[n].params)) for n in members], "binary", 2)
        proba = refit.fit(X.iloc[train], y[train]).predict_proba(X.iloc[val])
        assert score("accuracy", y[val], proba=proba) == pytest.approx(cv)


def test_multiclass_fold_missing_a_class_still_yields_one_column_per_class() -> None:
    """A rare class absent from some training folds: out-of-fold probabilities keep all k columns."""
    X, y = data(300, classes=3)
    y = y.copy()
    y[:3] = 3  # a fourth class with 3 rows
    result = select_model(X, y, ["linear"], setup("multiclass", labels=[0, 1, 2, 3], metric="f1", folds=5))
    oof = next(r for r in result.results if r.name == "linear").oof
    assert oof.shape == (300, 4)
    assert np.allclose(np.nansum(oof, axis=1), 1.0)


def test_best_prefers_lower_rmse() -> None:
    """For a lower-is-better metric the smallest mean CV error wins."""
    X, y = data()
    y = X["x"].to_numpy() * 2.0
    result = select_model(X, y, ["mean", "linear"], setup("regression", labels=[], metric="rmse"))
    assert best(result.results, "rmse").name == "linear"
    assert result.results[1].cv_mean < result.results[0].cv_mean


def test_trained_model_predicts_original_class_values_at_its_threshold() -> None:
    """TrainedModel maps codes back to the target's values and applies the cost-chosen threshold."""
    X, y = data()
    river = RiverEstimator(SCHEMA.to_dict(), "binary", labels=["ok", "fraud"], learning_rate=0.05).fit(X, y)
    never = TrainedModel("river", river, "binary", ["ok", "fraud"], 1.01, list(SCHEMA.kinds))
    always = TrainedModel("river", river, "binary", ["ok", "fraud"], 0.0, list(SCHEMA.kinds))
    assert set(never.predict(X.head(20))) == {"ok"}
    assert set(always.predict(X.head(20))) == {"fraud"}


def test_a_chosen_ensemble_is_rebuilt_from_its_members_and_survives_joblib(tmp_path) -> None:
    """build_chosen turns the ensemble result into an AveragingEnsemble of fresh members; once fitted and
    saved with joblib it predicts the same probabilities after loading."""
    import joblib

    from driftline.offline.selection import build_chosen

    X, y = data()
    s = setup(ensemble=True)
    result = select_model(X, y, ["linear", "river"], s)
    ensemble = next(r for r in result.results if r.name == "ensemble")
    model = build_chosen(ensemble, s).fit(X, y)
    assert isinstance(model, AveragingEnsemble) and [n for n, _ in model.members] == [
        m["name"] for m in ensemble.params["members"]
    ]
    joblib.dump(model, tmp_path / "m.joblib")
    assert np.array_equal(joblib.load(tmp_path / "m.joblib").predict_proba(X.head(25)), model.predict_proba(X.head(25)))
