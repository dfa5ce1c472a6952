"""Concept drift on error streams, data quality rates, and the label-free performance estimate."""

from __future__ import annotations

import numpy as np
import pytest
from river import drift

from driftline.monitoring.concept import BernoulliCUSUM, ErrorStream, detectors_for_task
from driftline.monitoring.performance_estimate import ConfidenceEstimate, RealisedMetric
from driftline.monitoring.quality import DataQuality, QualityCheck, out_of_range_rate, unseen_rate


def bernoulli(rng: np.random.Generator, *segments: tuple[float, int]) -> np.ndarray:
    return np.concatenate([(rng.random(n) < p).astype(float) for p, n in segments])


def test_cusum_stays_quiet_on_stationary_error_streams_of_several_rates() -> None:
    rng = np.random.default_rng(0)
    for p in (0.01, 0.1, 0.4):
        errors = bernoulli(rng, (p, 100_000))
        cusum = BernoulliCUSUM(arl=1e6)
        fired = sum(len(cusum.update_many(errors[s : s + 500]).detections) for s in range(0, errors.size, 500))
        assert fired == 0, p


def delays(rng: np.random.Generator, before: float, after: float, arl: float) -> tuple[float, float]:
    """Mean delays of our CUSUM and of ADWIN(0.002) over 10 streams changing at outcome 5000."""
    ours, adwin = [], []
    for _ in range(10):
        errors = bernoulli(rng, (before, 5000), (after, 3000))
        cusum, found = BernoulliCUSUM(arl=arl), []
        for s in range(0, errors.size, 100):
            found += [s + d for d in cusum.update_many(errors[s : s + 100]).detections if s + d >= 5000]
        ours.append(found[0] - 5000)
        detector = drift.ADWIN(delta=0.002)
        for i, e in enumerate(errors):
            detector.update(e)
            if detector.drift_detected and i >= 5000:
                adwin.append(i - 5000)
                break
    return float(np.mean(ours)), float(np.mean(adwin))


def test_cusum_detects_an_abrupt_jump_of_the_error_rate_in_under_half_adwins_delay() -> None:
    ours, adwin = delays(np.random.default_rng(1), 0.02, 0.45, arl=1e6)
    assert ours < 0.5 * adwin


def test_cusum_detects_a_moderate_increase_of_the_error_rate_sooner_than_adwin() -> None:
    ours, adwin = delays(np.random.default_rng(11), 0.05, 0.2, arl=1e6)
    assert ours < adwin


def test_cusum_ignores_a_falling_error_rate() -> None:
    """One-sided: a model getting better is not concept drift."""
    rng = np.random.default_rng(2)
    errors = bernoulli(rng, (0.3, 5000), (0.05, 20_000))
    assert BernoulliCUSUM(arl=1e6).update_many(errors).detections == []


def test_cusum_in_batches_equals_cusum_fed_the_same_batches_after_a_pickle_round_trip() -> None:
    import pickle

    rng = np.random.default_rng(3)
    errors = bernoulli(rng, (0.05, 3000), (0.4, 2000), (0.05, 3000), (0.5, 2000))
    a = BernoulliCUSUM(arl=1e5)
    a.update_many(errors[:4000])
    b = pickle.loads(pickle.dumps(a))
    found_a = [s + d for s in range(4000, errors.size, 250) for d in a.update_many(errors[s : s + 250]).detections]
    found_b = [s + d for s in range(4000, errors.size, 250) for d in b.update_many(errors[s : s + 250]).detections]
    assert found_a == found_b and found_a


def test_error_stream_picks_the_detectors_that_fit_the_task() -> None:
    assert detectors_for_task("binary", ("cusum", "adwin", "ddm", "eddm", "page_hinkley")) == [
        "cusum",
        "adwin",
        "ddm",
        "eddm",
    ]
    assert ErrorStream("regression", ("cusum", "adwin", "page_hinkley")).names == ["adwin", "page_hinkley"]
    with pytest.raises(ValueError):
        ErrorStream("binary", ("magic",))


def test_error_stream_reports_each_detection_once_with_its_position() -> None:
    rng = np.random.default_rng(4)
    stream = ErrorStream("binary", ("cusum", "adwin", "ddm", "eddm"), alpha=1e-6, arl=1e7)
    errors = bernoulli(rng, (0.05, 6000), (0.45, 2000))
    found = [
        (t.test, s + t.position) for s in range(0, errors.size, 500) for t in stream.update_many(errors[s : s + 500])
    ]
    assert {name for name, _ in found} >= {"cusum", "adwin"}
    assert all(position >= 6000 for _, position in found)


def test_regression_error_stream_detects_larger_absolute_errors() -> None:
    rng = np.random.default_rng(5)
    stream = ErrorStream("regression", ("adwin", "page_hinkley"), alpha=1e-6, arl=1e7, grace=500)
    errors = np.abs(np.concatenate([rng.normal(0, 1, 8000), rng.normal(0, 3, 2000)]))
    found = [s + t.position for s in range(0, errors.size, 500) for t in stream.update_many(errors[s : s + 500])]
    assert found and min(found) >= 8000


def test_quality_checks_alert_on_a_jump_of_missing_values_but_not_on_the_reference_rate() -> None:
    rng = np.random.default_rng(6)
    quality = DataQuality([QualityCheck("missing", "x", 0.02)], window=1000, hop=500, alpha=1e-5, min_excess=0.01)
    for _ in range(40):
        assert not any(t.rejected for t in quality.update(500, np.array([rng.binomial(500, 0.02)])))
    tests = quality.update(500, np.array([rng.binomial(500, 0.10)]))
    assert tests[0].rejected and tests[0].statistic > 0.04


def test_quality_min_excess_keeps_a_significant_but_negligible_increase_quiet() -> None:
    quality = DataQuality(
        [QualityCheck("missing", "x", 0.0001)], window=10_000, hop=10_000, alpha=1e-5, min_excess=0.01
    )
    tests = quality.update(10_000, np.array([20]))  # 0.2% missing: p tiny, but only 0.19 points above reference
    assert tests[0].p_value < 1e-5 and not tests[0].rejected


def test_reference_rates_of_out_of_range_and_unseen_values() -> None:
    assert out_of_range_rate(99) == pytest.approx(0.02)
    assert unseen_rate({"a": 0.5, "b": 0.5}, 1000) == pytest.approx(1 / 1001)  # no singleton: a floor


def test_confidence_estimate_learns_its_reference_then_alerts_when_confidence_falls() -> None:
    rng = np.random.default_rng(7)
    estimate = ConfidenceEstimate(window=1000, hop=500, alpha=1e-5, tolerance=0.05)
    for _ in range(10):
        assert not estimate.update_many(rng.uniform(0.8, 1.0, 500)).drift_detected
    assert estimate.reference == pytest.approx(0.9, abs=0.01)
    fired = [estimate.update_many(rng.uniform(0.55, 0.85, 500)).drift_detected for _ in range(3)]
    assert any(fired)


def test_confidence_estimate_does_not_alert_on_a_drop_smaller_than_the_tolerance() -> None:
    rng = np.random.default_rng(8)
    estimate = ConfidenceEstimate(window=5000, hop=5000, alpha=1e-5, tolerance=0.05)
    estimate.update_many(rng.uniform(0.8, 1.0, 5000))
    assert not estimate.update_many(rng.uniform(0.78, 0.98, 5000)).drift_detected  # 0.02 lower, significant


def test_realised_metric_is_accuracy_for_classifiers_and_mae_for_regression() -> None:
    assert RealisedMetric("binary", 4).update_many(np.array([0, 1, 0, 0])).value == 0.75
    assert RealisedMetric("regression", 2).update_many(np.array([5.0, 1.0, 3.0])).value == 2.0
    assert RealisedMetric("binary").value is None
