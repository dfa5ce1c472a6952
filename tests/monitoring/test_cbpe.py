"""CBPE: calibrated estimates of a window's metrics come close to the realised ones, closer than the mean
top-class probability; the monitor keeps one window of estimated and realised metrics per 1,000 labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from driftline.models.features import FeatureSchema
from driftline.monitoring.cbpe import METRICS, Calibrator, estimate, realised
from driftline.monitoring.monitor import Monitor, MonitorConfig


def overconfident(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a model far too sure of itself, and labels drawn from the true chances (shifted later)."""
    x = rng.normal(shift, 1, n)
    truth = 1 / (1 + np.exp(-x))
    return 1 / (1 + np.exp(-4 * x)), rng.random(n) < truth


def test_calibrated_estimates_fall_within_their_bands_and_beat_the_top_class_probability() -> None:
    rng = np.random.default_rng(0)
    scores, labels = overconfident(rng, 4000)
    calibrator = Calibrator.fit(scores[:2000], labels[:2000])
    errors, naive = {m: [] for m in METRICS}, []
    for shift in (0.0, 0.8, 1.6):  # the population moves: accuracy changes, CBPE follows it without labels
        s, y = overconfident(rng, 1000, shift)
        est, real = estimate(calibrator.transform(s), predicted=s >= 0.5), realised(s, y)
        for m in METRICS:
            errors[m].append(abs(est[m] - real[m]))
            if m == "accuracy" or shift < 1:  # far out, the isotonic map is clipped at its last step
                assert abs(est[m] - real[m]) <= est["bands"][m], (shift, m, est[m], real[m])
        naive.append(abs(np.maximum(s, 1 - s).mean() - real["accuracy"]))
    assert max(errors["accuracy"]) < 0.03 < min(naive)


def test_the_learning_monitor_keeps_estimated_and_realised_metrics_per_window_of_labels() -> None:
    rng = np.random.default_rng(1)
    monitor = Monitor("m", FeatureSchema({"x": "numeric"}), "binary", None, MonitorConfig())
    for b in range(12):
        scores, labels = overconfident(rng, 500, shift=0.0 if b < 6 else 1.0)
        ids = [f"e{b * 500 + i}" for i in range(500)]
        probabilities = [{True: s, False: 1 - s} for s in scores.tolist()]
        predictions = (scores >= 0.5).tolist()
        monitor.observe_outcomes(ids, labels.tolist(), predictions, probabilities, 1 + b // 2, b * 1000)
    windows = monitor.performance_windows()
    assert [w["end_event_id"] for w in windows] == [f"e{i}" for i in range(1999, 6000, 1000)]
    assert monitor.calibrator is not None and monitor.calibrator.fitted_on == 1000
    for w in windows:
        assert set(w["estimated"]) >= set(METRICS) and set(w["realised"]) >= set(METRICS)
        assert abs(w["estimated"]["accuracy"] - w["realised"]["accuracy"]) <= w["estimated"]["bands"]["accuracy"]
    assert windows[-1]["realised"]["accuracy"] > windows[0]["realised"]["accuracy"] + 0.02  # shifted: easier
    assert windows[-1]["estimated"]["accuracy"] > windows[0]["estimated"]["accuracy"] + 0.02


def test_the_calibration_is_chosen_by_its_brier_score_on_the_half_it_was_not_fitted_on() -> None:
    """Scores on a line of the truth's log-odds (Platt's form) pick Platt, whose probabilities come closer to the
    true chances than isotonic's steps; scores whose order is not the truth's pick isotonic."""
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1.5, 6000)
    truth = 1 / (1 + np.exp(-x))
    labels = rng.random(x.size) < truth
    scores = 1 / (1 + np.exp(-3 * x - 1))  # a logistic model off in scale and offset
    chosen = Calibrator.fit(scores[:1000], labels[:1000])
    off = {
        method: float(
            np.mean(
                np.abs(
                    Calibrator.fit(scores[:1000], labels[:1000], method=method).transform(scores[1000:]) - truth[1000:]
                )
            )
        )
        for method in ("platt", "isotonic")
    }
    assert chosen.method == "platt" and off["platt"] < off["isotonic"] / 2, off
    u = (truth > 0.5) + truth / 2  # a step: no line in log-odds fits it
    stepped = np.where(truth > 0.5, 0.5 + u / 10, 0.5 - u / 10)
    assert Calibrator.fit(stepped[:2000], labels[:2000]).method == "isotonic"


def test_a_shared_calibrator_round_trips_and_one_that_is_no_increasing_map_into_probabilities_is_refused() -> None:
    rng = np.random.default_rng(2)
    scores = rng.random(1000)
    fitted = Calibrator.fit(scores, rng.random(1000) < scores)
    assert Calibrator.from_json(fitted.to_json()) == fitted
    for broken in (
        {"x": [0.0, 1.0], "y": [0.9, 0.1], "threshold": 0.5},  # decreasing
        {"x": [0.0, 1.0], "y": [0.0, 1.5], "threshold": 0.5},  # beyond 1
        {"x": [0.0, 1.0], "y": [0.0], "threshold": 0.5},  # lengths differ
        {"x": [0.0, float("nan")], "y": [0.0, 1.0], "threshold": 0.5},
    ):
        with pytest.raises(ValueError):
            Calibrator.from_json(json.dumps(broken))


@pytest.mark.parametrize("method", ["platt", "isotonic", None])
def test_scores_that_fall_as_the_positives_rise_still_get_an_increasing_calibrator_every_scorer_accepts(method) -> None:
    rng = np.random.default_rng(3)
    scores = rng.random(2000)
    labels = rng.random(2000) < 1 - scores  # a model whose concept flipped: higher scores, fewer positives
    fitted = Calibrator.fit(scores, labels, method=method)
    assert np.all(np.diff(fitted.y) >= 0)
    assert Calibrator.from_json(fitted.to_json()) == fitted


def test_platt_scaling_by_newton_matches_scikit_learns_logistic_regression() -> None:
    from scipy import special
    from sklearn.linear_model import LogisticRegression

    from driftline.monitoring.cbpe import PLATT_C, platt_fit

    rng = np.random.default_rng(5)
    grid = np.linspace(-10, 10, 41)
    for case in range(30):
        n = int(rng.integers(40, 3000))
        z = rng.normal(rng.uniform(-2, 2), rng.uniform(0.2, 3), n)
        labels = (z > 0) if case % 5 == 0 else rng.random(n) < special.expit(rng.uniform(-3, 3) * z + rng.normal())
        labels[:2] = True, False  # both classes
        slope, intercept = platt_fit(z, labels)
        reference = LogisticRegression(C=PLATT_C, tol=1e-10, max_iter=10_000).fit(z[:, None], labels.astype(int))
        ours, theirs = special.expit(slope * grid + intercept), reference.predict_proba(grid[:, None])[:, 1]
        assert np.abs(ours - theirs).max() < 1e-5, (case, slope, intercept, reference.coef_, reference.intercept_)


def test_a_learner_registering_a_version_every_500_labels_gets_its_calibrator_refitted_once_per_calibration_every():
    rng = np.random.default_rng(6)
    monitor = Monitor("m", FeatureSchema({"x": "numeric"}), "binary", None, MonitorConfig(calibration_every=10_000))
    fitted = []
    for b in range(24):
        scores, labels = overconfident(rng, 500)
        ids = [f"e{b * 500 + i}" for i in range(500)]
        probabilities = [{True: s, False: 1 - s} for s in scores.tolist()]
        monitor.observe_outcomes(ids, labels.tolist(), (scores >= 0.5).tolist(), probabilities, b + 1, b * 1000)
        if monitor.calibrator is not None and (not fitted or fitted[-1][1] is not monitor.calibrator):
            fitted.append((b, monitor.calibrator))
    assert [b for b, _ in fitted] == [2, 22], "first once 1,000 outcomes are in, then 10,000 outcomes later"


def test_the_isotonic_map_is_scikit_learns_isotonic_regression_ties_and_flat_steps_included() -> None:
    from sklearn.isotonic import IsotonicRegression

    from driftline.monitoring.cbpe import isotonic_fit

    rng = np.random.default_rng(7)
    for case in range(40):
        n = int(rng.integers(1, 3000))
        scores = rng.random(n)
        if case % 4 == 0:
            scores = np.round(scores, 2)  # many tied scores
        labels = rng.random(n) < (scores if case % 3 else 1 - scores)
        x, p = isotonic_fit(scores, labels.astype(float))
        reference = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
        np.testing.assert_array_equal(x, reference.X_thresholds_, err_msg=str(case))
        np.testing.assert_allclose(p, reference.y_thresholds_, rtol=0, atol=1e-12, err_msg=str(case))
