"""Champion/challenger: losses, paired significance tests, promotion policy, River and sklearn challengers."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from driftline.models.champion import (
    EPS,
    Challenger,
    PairedComparison,
    PromotionPolicy,
    RiverChallenger,
    SklearnChallenger,
    as_challenger,
    label_loss,
)
from driftline.models.features import FeatureSchema
from driftline.models.scoring import Scored, score_batch
from driftline.models.specs import build_model

SCHEMA = FeatureSchema({"x": "numeric", "c": "categorical"})


def fed(pairs: list[tuple[float, float]], **kwargs: Any) -> PairedComparison:
    comparison = PairedComparison(**kwargs)
    for champion, challenger in pairs:
        comparison.update(champion, challenger)
    return comparison


def test_sign_test_on_zero_one_losses_names_the_challenger_when_it_errs_less() -> None:
    """0/1 losses use the sign test; 30 vs 10 errors over 60 labels is significant for the challenger."""
    r = fed([(float(i % 2), float(i % 6 == 0)) for i in range(60)]).result()
    assert r["test"] == "sign" and r["winner"] == "challenger"
    assert r["champion_loss"] == 0.5 and r["challenger_loss"] == pytest.approx(1 / 6)
    discordant = [(a, b) for a, b in ((float(i % 2), float(i % 6 == 0)) for i in range(60)) if a != b]
    better = sum(b < a for a, b in discordant)
    assert r["p_value"] == pytest.approx(stats.binomtest(better, len(discordant)).pvalue)


def test_sign_test_names_the_champion_when_the_challenger_errs_more() -> None:
    """Swapping the roles makes the champion the winner."""
    r = fed([(float(i % 6 == 0), float(i % 2)) for i in range(60)]).result()
    assert r["winner"] == "champion" and r["difference"] > 0


def test_continuous_losses_use_a_paired_t_test_matching_scipy() -> None:
    """Log-loss-like losses use ttest_rel; statistic and p-value equal scipy's."""
    rng = random.Random(1)
    pairs = [(rng.expovariate(1.0), rng.expovariate(1.2)) for _ in range(300)]
    r = fed(pairs).result()
    expected = stats.ttest_rel([b for _, b in pairs], [a for a, _ in pairs])
    assert r["test"] == "ttest"
    assert (r["statistic"], r["p_value"]) == pytest.approx((expected.statistic, expected.pvalue))


def test_wilcoxon_option_matches_scipy() -> None:
    """test='wilcoxon' reports scipy's signed-rank statistic and p-value."""
    rng = random.Random(2)
    pairs = [(rng.random() + 0.3, rng.random()) for _ in range(80)]
    r = fed(pairs, test="wilcoxon").result()
    expected = stats.wilcoxon([b for _, b in pairs], [a for a, _ in pairs])
    assert (r["statistic"], r["p_value"]) == pytest.approx((expected.statistic, expected.pvalue))
    assert r["winner"] == "challenger"


def test_equal_models_have_no_winner() -> None:
    """Identical losses give p=1 and no winner; noisy equal models are not significant."""
    assert fed([(0.3, 0.3)] * 50).result()["p_value"] == 1.0
    rng = random.Random(3)
    r = fed([(rng.random(), rng.random()) for _ in range(200)]).result()
    assert r["winner"] is None and r["p_value"] > 0.05


def test_too_few_pairs_give_no_test_and_no_winner() -> None:
    """With fewer than two pairs the p-value is None and nobody wins."""
    r = fed([(1.0, 0.0)]).result()
    assert (r["n"], r["p_value"], r["winner"]) == (1, None, None)
    assert PairedComparison().result()["champion_loss"] is None


def test_window_keeps_only_the_latest_pairs() -> None:
    """After 100 champion-better pairs then 100 challenger-better ones (window 100), the challenger wins."""
    r = fed([(0.1, 0.9)] * 100 + [(0.9, 0.1 + i / 1000) for i in range(100)], window=100).result()
    assert (r["n"], r["seen"], r["winner"]) == (100, 200, "challenger")


def test_result_is_strict_json_even_for_a_constant_difference() -> None:
    """A constant non-zero difference gives p=0 and an infinite t reported as None: allow_nan=False works."""
    r = fed([(1.0, 0.5)] * 10, test="ttest").result()
    assert r["p_value"] == 0.0 and r["statistic"] is None and r["winner"] == "challenger"
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize(("champion", "challenger"), [(math.nan, 0.0), (0.0, math.inf)])
def test_non_finite_losses_are_rejected(champion: float, challenger: float) -> None:
    """NaN or infinite losses raise ValueError instead of poisoning the window."""
    with pytest.raises(ValueError, match="finite"):
        PairedComparison().update(champion, challenger)


@pytest.mark.parametrize(
    ("result", "promote", "reason"),
    [
        ({"n": 99, "p_value": 0.001, "champion_loss": 1.0, "challenger_loss": 0.5}, False, "only 99"),
        ({"n": 500, "p_value": 0.2, "champion_loss": 1.0, "challenger_loss": 0.5}, False, "not significant"),
        ({"n": 500, "p_value": None, "champion_loss": 1.0, "challenger_loss": 1.0}, False, "not significant"),
        ({"n": 500, "p_value": 0.001, "champion_loss": 0.5, "challenger_loss": 1.0}, False, "not below"),
        ({"n": 500, "p_value": 0.001, "champion_loss": 1.0, "challenger_loss": 0.97}, False, "below the required"),
        ({"n": 500, "p_value": 0.001, "champion_loss": 1.0, "challenger_loss": 0.9}, True, "10.00% lower"),
    ],
)
def test_promotion_policy_needs_enough_labels_significance_and_improvement(
    result: dict[str, Any], promote: bool, reason: str
) -> None:
    """Each unmet condition blocks promotion with its reason; meeting all promotes."""
    decision = PromotionPolicy(min_labels=100, alpha=0.05, min_improvement=0.05).decide(result)
    assert decision.promote is promote and reason in decision.reason


def test_label_loss_for_classifiers_and_regressors() -> None:
    """Log loss uses the true class's probability (0/1/bool labels map to 'False'/'True'); regression abs/sq."""
    s = Scored(True, {"True": 0.75, "False": 0.25}, 0.75, 0.75)
    assert label_loss("binary", 1, s) == pytest.approx(-math.log(0.75))
    assert label_loss("binary", False, s) == pytest.approx(-math.log(0.25))
    assert label_loss("binary", True, s, "zero_one") == 0.0
    m = Scored("b", {"a": 0.1, "b": 0.9}, None, 0.9)
    assert label_loss("multiclass", "a", m) == pytest.approx(-math.log(0.1))
    assert label_loss("multiclass", "c", m) == pytest.approx(-math.log(EPS))
    assert label_loss("regression", 1.0, Scored(3.0, None, 3.0, None)) == 2.0
    assert label_loss("regression", 1.0, Scored(3.0, None, 3.0, None), "squared") == 4.0


def test_label_loss_of_an_unscored_row_is_the_maximum() -> None:
    """Untrained (empty probabilities) or failed rows cost -log(EPS) or 1; regression refuses."""
    assert label_loss("multiclass", "a", Scored(None, {}, None, None)) == pytest.approx(-math.log(EPS))
    assert label_loss("multiclass", "a", Scored(None, {}, None, None), "zero_one") == 1.0
    with pytest.raises(ValueError, match="no prediction"):
        label_loss("regression", 1.0, Scored(None, None, None, None, error="KeyError: 'x'"))


def frame_rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"x": rng.uniform(-2, 2), "c": rng.choice("abc")} for _ in range(n)]


def sklearn_pipeline(head: Any) -> Any:
    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["x"]),
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                ["c"],
            ),
        ]
    )
    return make_pipeline(features, head)


@pytest.mark.parametrize(
    ("task", "head", "target"),
    [
        ("binary", LogisticRegression(), lambda r: int(r["x"] > 0)),
        ("multiclass", LogisticRegression(), lambda r: "neg" if r["x"] < -0.5 else ("mid" if r["x"] < 0.5 else "pos")),
        ("regression", LinearRegression(), lambda r: 2 * r["x"] + (r["c"] == "a")),
    ],
)
def test_sklearn_challenger_equals_the_pipelines_own_predictions(task: str, head: Any, target: Any) -> None:
    """Probabilities/values equal predict_proba/predict on the same DataFrame; binary keys are 'False'/'True'."""
    train = frame_rows(300, seed=4)
    pipe = sklearn_pipeline(head).fit(pd.DataFrame(train), [target(r) for r in train])
    rows = frame_rows(20, seed=5)
    scored = SklearnChallenger(pipe, task).score_batch(rows)
    frame = pd.DataFrame(rows)
    if task == "regression":
        assert [s.prediction for s in scored] == pytest.approx(pipe.predict(frame).tolist())
        return
    proba = pipe.predict_proba(frame)
    keys = ["False", "True"] if task == "binary" else [str(c) for c in pipe.classes_]
    for s, line in zip(scored, proba, strict=True):
        assert list(s.probabilities) == keys
        assert list(s.probabilities.values()) == pytest.approx(line.tolist())
        assert s.confidence == pytest.approx(max(line))
    if task == "binary":
        assert all(type(s.prediction) is bool for s in scored)


def test_sklearn_challenger_imputes_missing_features_and_isolates_a_failing_row() -> None:
    """A row without 'x' is imputed by the pipeline; a row the pipeline rejects gets an error, others score."""
    train = frame_rows(100, seed=6)
    pipe = sklearn_pipeline(LogisticRegression()).fit(pd.DataFrame(train), [r["x"] > 0 for r in train])
    challenger = SklearnChallenger(pipe, "binary")
    scored = challenger.score_batch([{"c": "a"}, {"x": "not a number", "c": "b"}, {"x": 1.0, "c": "z"}])
    assert scored[0].error is None and scored[2].error is None
    assert scored[1].error is not None and scored[1].prediction is None


def test_as_challenger_wraps_river_and_sklearn_models_behind_one_protocol() -> None:
    """River models get RiverChallenger, sklearn estimators SklearnChallenger; both satisfy Challenger."""
    river_model = build_model(SCHEMA, "binary")
    sk = LogisticRegression().fit(pd.DataFrame({"x": [0.0, 1.0]}), [0, 1])
    assert isinstance(as_challenger(river_model, "binary"), RiverChallenger)
    assert isinstance(as_challenger(sk, "binary"), SklearnChallenger)
    assert all(isinstance(as_challenger(m, "binary"), Challenger) for m in (river_model, sk))
    rows = frame_rows(5, seed=7)
    assert as_challenger(river_model, "binary").score_batch(rows) == score_batch(river_model, "binary", rows)
    with pytest.raises(TypeError, match="neither"):
        as_challenger(object(), "binary")


def test_a_better_sklearn_challenger_beats_a_fresh_river_champion_on_the_same_labels() -> None:
    """End to end: both score the same events, per-label log losses are paired, the challenger wins."""
    train = frame_rows(400, seed=8)
    pipe = sklearn_pipeline(LogisticRegression()).fit(pd.DataFrame(train), [r["x"] > 0 for r in train])
    champion = RiverChallenger(build_model(SCHEMA, "binary"), "binary")
    challenger = as_challenger(pipe, "binary")
    comparison = PairedComparison(window=200)
    rows = frame_rows(200, seed=9)
    for row, a, b in zip(rows, champion.score_batch(rows), challenger.score_batch(rows), strict=True):
        comparison.update(label_loss("binary", row["x"] > 0, a), label_loss("binary", row["x"] > 0, b))
    result = comparison.result()
    assert result["winner"] == "challenger" and result["test"] == "ttest"
    assert PromotionPolicy(min_labels=100, min_improvement=0.2).decide(result).promote
    assert np.isfinite(result["p_value"])
