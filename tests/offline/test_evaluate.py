"""Final evaluation: cost-based threshold, bootstrap confidence intervals, the go/no-go verdict."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.offline.evaluate import Estimate, choose_threshold, decide_verdict, evaluate_models, expected_cost


def noisy_binary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(scale=0.25, size=n), 0, 1)
    return y, np.column_stack([1 - p, p])


def test_threshold_drops_when_false_negatives_cost_more() -> None:
    """Making a missed positive 10x costlier moves the threshold down; 10x costlier false alarms move it up."""
    y, proba = noisy_binary(2000, 0)
    equal, _ = choose_threshold(y, proba[:, 1], cost_fp=1, cost_fn=1)
    cheap_alarms, _ = choose_threshold(y, proba[:, 1], cost_fp=1, cost_fn=10)
    costly_alarms, _ = choose_threshold(y, proba[:, 1], cost_fp=10, cost_fn=1)
    assert cheap_alarms < equal < costly_alarms


def test_chosen_threshold_has_the_lowest_expected_cost_on_its_data() -> None:
    """No other threshold of a fine grid has a lower expected cost than the chosen one."""
    y, proba = noisy_binary(1000, 1)
    costs = {"false_positive": 2.0, "false_negative": 5.0}
    threshold, cost = choose_threshold(y, proba[:, 1], cost_fp=2.0, cost_fn=5.0)
    assert cost == pytest.approx(expected_cost("binary", y, proba, costs, threshold))
    others = [expected_cost("binary", y, proba, costs, t) for t in np.linspace(0.005, 0.995, 199)]
    assert cost <= min(others) + 1e-12


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_rows() -> None:
    """The 95% interval brackets the point value and is about half as wide with 4x the rows."""
    widths = []
    for n in (500, 2000):
        y, proba = noisy_binary(n, 2)
        estimates, _ = evaluate_models(
            "accuracy",
            y,
            {"m": proba, "b": np.full_like(proba, 0.5)},
            task="binary",
            thresholds={},
            baseline="b",
            primary="m",
            resamples=400,
        )
        m = estimates["m"]
        assert m.ci_low <= m.value <= m.ci_high
        widths.append(m.ci_high - m.ci_low)
    assert widths[1] == pytest.approx(widths[0] / 2, rel=0.3)


def test_paired_improvement_interval_is_narrower_than_the_difference_of_independent_intervals() -> None:
    """Two strongly correlated models: the paired CI of their difference is much tighter than either CI."""
    y, proba = noisy_binary(1000, 3)
    better = proba.copy()
    better[:20] = np.eye(2)[y[:20]]  # 20 more rows right, otherwise identical
    estimates, gain = evaluate_models(
        "accuracy", y, {"m": better, "b": proba}, task="binary", thresholds={}, baseline="b", primary="m", resamples=500
    )
    assert gain.value > 0 and gain.ci_low > 0
    assert gain.ci_high - gain.ci_low < (estimates["m"].ci_high - estimates["m"].ci_low) / 2


def test_improvement_for_lower_is_better_metrics_is_positive_when_error_drops() -> None:
    """RMSE: a model with smaller errors than the baseline has a positive improvement."""
    rng = np.random.default_rng(4)
    y = rng.normal(size=800)
    _, gain = evaluate_models(
        "rmse",
        y,
        {"m": y + rng.normal(scale=0.1, size=800), "b": np.zeros(800)},
        task="regression",
        thresholds={},
        baseline="b",
        primary="m",
        resamples=300,
    )
    assert gain.ci_low > 0.5


def test_improvement_over_a_number_from_the_card_shifts_the_model_interval() -> None:
    """A numeric baseline (the current system's score) is subtracted from every resample."""
    y, proba = noisy_binary(500, 5)
    estimates, gain = evaluate_models(
        "accuracy", y, {"m": proba}, task="binary", thresholds={}, baseline=0.5, primary="m", resamples=300
    )
    assert gain.value == pytest.approx(estimates["m"].value - 0.5)
    assert gain.ci_low == pytest.approx(estimates["m"].ci_low - 0.5)


@pytest.mark.parametrize(
    ("gain", "min_improvement", "min_score", "go"),
    [
        (Estimate(0.1, 0.05, 0.15), 0.0, None, True),
        (Estimate(0.1, -0.01, 0.2), 0.0, None, False),  # CI straddles zero
        (Estimate(0.1, 0.05, 0.15), 0.06, None, False),  # improvement too small for the card
        (Estimate(0.1, 0.05, 0.15), 0.0, 0.85, False),  # model CI low 0.8 under the card's minimum
        (Estimate(0.1, 0.05, 0.15), 0.0, 0.75, True),
    ],
)
def test_verdict_requires_the_improvement_ci_and_the_metric_ci_to_clear_the_card(
    gain, min_improvement, min_score, go
) -> None:
    """GO only when the improvement CI is above min_improvement and the metric CI clears min_score."""
    model = Estimate(0.85, 0.8, 0.9)
    verdict = decide_verdict(
        "f1", model, Estimate(0.75, 0.7, 0.8), gain, min_improvement=min_improvement, min_score=min_score
    )
    assert verdict.go is go
    assert verdict.to_dict()["decision"] == ("go" if go else "no-go")


def test_verdict_for_rmse_checks_the_upper_bound_against_a_maximum() -> None:
    """Lower-is-better: the metric CI's upper bound must stay under the card's maximum."""
    model = Estimate(3.0, 2.8, 3.3)
    gain = Estimate(1.0, 0.5, 1.5)
    assert decide_verdict("rmse", model, None, gain, min_improvement=0, min_score=3.5).go
    assert not decide_verdict("rmse", model, None, gain, min_improvement=0, min_score=3.2).go
