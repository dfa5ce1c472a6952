"""Data and prediction drift detectors: statistics against scipy, calibration under no drift, power under drift,
River conformance (pickle round trip, same seed same result, inputs not mutated)."""

from __future__ import annotations

import copy
import pickle
import random

import numpy as np
import pytest
from river import drift
from scipy import stats

from driftline.monitoring.drift_categorical import CategoricalDrift, js_distance
from driftline.monitoring.drift_numeric import GridLookup, NumericDrift, NumericDriftBank, NumericReference
from driftline.monitoring.drift_prediction import PredictionDrift
from driftline.monitoring.streaming import StreamingBank, StreamingDrift, TabulatedKSWIN, ks_equal_sizes_p_values
from driftline.monitoring.window import BinnedWindow, hop_chunks


def test_binned_window_counts_equal_a_brute_force_count_of_the_last_values() -> None:
    rng = np.random.default_rng(0)
    window, history = BinnedWindow(bins=7, size=50), []
    for size in rng.integers(0, 80, 40):
        chunk = rng.integers(0, 7, size)
        window.push(chunk)
        history.extend(chunk.tolist())
        assert window.counts.tolist() == np.bincount(history[-50:], minlength=7).tolist()
        assert window.values().tolist() == history[-50:]


def test_hop_chunks_cover_the_batch_and_end_exactly_on_hop_multiples() -> None:
    chunks = list(hop_chunks(seen=130, count=500, hop=250))
    assert chunks[0][0] == 0 and chunks[-1][1] == 500
    assert [130 + stop for _, stop, due in chunks if due] == [250, 500]


def test_grid_lookup_matches_searchsorted_on_skewed_discrete_and_out_of_range_values() -> None:
    rng = np.random.default_rng(1)
    grids = [
        np.unique(np.quantile(rng.lognormal(0, 2, 1000), np.linspace(0, 1, 257), method="inverted_cdf")),
        np.unique(rng.integers(0, 5, 100).astype(float)),
        np.array([3.0]),
    ]
    x = np.column_stack([rng.lognormal(0, 3, 4000), rng.integers(-2, 8, 4000), rng.choice([2.0, 3.0, 4.0], 4000)])
    x[:20, 0] = grids[0][:20]
    expected = np.column_stack([np.searchsorted(g, x[:, f], "left") for f, g in enumerate(grids)])
    assert (GridLookup(grids).bins(x) == expected).all()


def test_ks_distance_and_p_value_agree_with_scipy_two_sample_ks() -> None:
    rng = np.random.default_rng(2)
    reference, window = rng.normal(0, 1, 1000), rng.normal(0.15, 1, 500)
    test = {t.test: t for t in NumericDrift(reference, window=500, hop=500, alpha=1e-3).update_many(window).tests}
    scipy_result = stats.ks_2samp(window, reference)
    assert test["ks"].statistic == pytest.approx(scipy_result.statistic, abs=0.004)  # evaluated on a 256-point grid
    assert test["ks"].p_value == pytest.approx(scipy_result.pvalue, rel=0.5)


def test_ks_is_exact_for_integer_features_whose_values_are_all_grid_points() -> None:
    rng = np.random.default_rng(3)
    reference, window = rng.integers(0, 5, 1000).astype(float), rng.integers(0, 5, 500).astype(float)
    test = NumericDrift(reference, window=500, hop=500).update_many(window).tests[1]
    assert test.statistic == pytest.approx(stats.ks_2samp(window, reference).statistic)


def test_numeric_tests_reject_about_alpha_of_windows_when_nothing_changes() -> None:
    """Calibration: 400 independent null windows at alpha = 5% reject 5% +- noise (PSI's chi-square law too)."""
    rng = np.random.default_rng(4)
    rejected = {"psi": 0, "ks": 0}
    trials = 400
    for _ in range(trials):
        detector = NumericDrift(rng.normal(0, 1, 1000), window=500, hop=500, alpha=0.05)
        for test in detector.update_many(rng.normal(0, 1, 500)).tests:
            rejected[test.test] += test.rejected
    assert 0.02 * trials <= rejected["psi"] <= 0.09 * trials
    assert rejected["ks"] <= 0.08 * trials  # KS on a grid is slightly conservative


def test_numeric_drift_detects_a_one_std_mean_shift_within_one_window() -> None:
    rng = np.random.default_rng(5)
    detector = NumericDrift(rng.normal(0, 1, 1000), window=500, hop=250, alpha=1e-6)
    assert not any(t.rejected for t in detector.update_many(rng.normal(0, 1, 5000)).tests)
    fired = [t.position for t in detector.update_many(rng.normal(1, 1, 1000)).tests if t.rejected]
    assert fired and fired[0] <= 500


def test_bank_gives_each_feature_the_same_result_as_its_own_detector_and_handles_missing_values() -> None:
    rng = np.random.default_rng(6)
    refs = {"a": rng.normal(0, 1, 800), "b": rng.exponential(1, 800)}
    bank = NumericDriftBank({k: NumericReference.of(v) for k, v in refs.items()}, window=300, hop=100)
    data = np.column_stack([rng.normal(0.3, 1, 700), rng.exponential(1.2, 700)])
    data[rng.random(700) < 0.1, 1] = np.nan
    bank.update_many(data)
    single = NumericDrift(refs["b"], window=300, hop=100)
    for value in data[:, 1]:  # one at a time, NaN included (a missing value takes a place in the window)
        single.update(value)
    assert [t.statistic for t in bank.tests(1)] == pytest.approx([t.statistic for t in single.last])


def test_fixed_probability_lattice_ignores_a_small_creep_inside_a_narrow_score_band() -> None:
    """Scores 0.47-0.49 creeping by 0.005 is 'significant' on quantile bins but not on the probability lattice."""
    rng = np.random.default_rng(7)
    before, after = rng.uniform(0.470, 0.490, 1000), rng.uniform(0.465, 0.485, 500)
    quantile = NumericDrift(before, window=500, hop=500, alpha=1e-4).update_many(after).tests
    assert any(t.rejected for t in quantile)
    lattice = NumericDriftBank(
        {"p": NumericReference.of(before, edges=np.linspace(0.1, 0.9, 9), grid=np.linspace(0, 1, 21))}, 500, 500, 1e-4
    )
    lattice.update_many(after.reshape(-1, 1))
    assert not any(t.rejected for t in lattice.tests(0))


def test_categorical_chi_square_is_calibrated_without_drift_and_detects_a_mix_change() -> None:
    rng = random.Random(8)
    reference = {"a": 0.6, "b": 0.3, "c": 0.08, "d": 0.02}
    rejected = 0
    for _ in range(200):
        detector = CategoricalDrift(reference, reference_count=100_000, window=500, hop=500, alpha=0.05)
        values = rng.choices(list(reference), weights=list(reference.values()), k=500)
        rejected += detector.update_many(values).tests[0].rejected
    assert rejected <= 0.1 * 200
    detector = CategoricalDrift(reference, reference_count=100_000, window=500, hop=500, alpha=1e-6)
    shifted = rng.choices(list(reference), weights=[0.4, 0.4, 0.15, 0.05], k=500)
    assert detector.update_many(shifted).drift_detected
    assert 0 < detector.js_distance < 1


def test_categorical_unseen_categories_do_not_break_the_test_and_count_in_the_js_distance() -> None:
    detector = CategoricalDrift({"a": 0.5, "b": 0.5}, reference_count=1000, window=100, hop=100)
    test = detector.update_many(["a", "b"] * 45 + ["zzz"] * 10).tests[0]
    assert 0 <= test.p_value <= 1
    assert detector.js_distance > 0
    assert js_distance(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0


def test_prediction_drift_with_a_trailing_reference_tolerates_a_slow_creep_but_not_a_jump() -> None:
    rng = np.random.default_rng(9)
    detector = PredictionDrift("numeric", window=500, hop=250, alpha=1e-5, lag=2000, reference_size=1000)
    creep = rng.normal(0, 1, 30_000) + np.linspace(0, 1.0, 30_000)
    fired = [t for s in range(0, 30_000, 500) for t in detector.update_many(creep[s : s + 500]).tests if t.rejected]
    assert fired == []
    assert detector.update_many(rng.normal(3, 1, 500)).drift_detected


def test_prediction_drift_on_classes_uses_the_chi_square_test() -> None:
    rng = random.Random(10)
    detector = PredictionDrift("categorical", window=500, hop=500, alpha=1e-6, lag=1000, reference_size=1000)
    for _ in range(6):
        detector.update_many(rng.choices("xyz", weights=[6, 3, 1], k=500))
    tests = detector.update_many(rng.choices("xyz", weights=[1, 3, 6], k=500)).tests
    assert [t.test for t in tests] == ["chi2"] and tests[0].rejected


def test_gnedenko_korolyuk_p_values_equal_scipys_exact_two_sample_ks() -> None:
    table = ks_equal_sizes_p_values(30)
    a = np.arange(30.0)
    for k in (3, 8, 15, 30):
        expected = stats.ks_2samp(a, a + k - 0.5, method="exact").pvalue
        assert table[k] == pytest.approx(expected, rel=1e-9)


def test_tabulated_kswin_makes_the_same_decisions_as_rivers_kswin() -> None:
    rng = random.Random(11)
    data = [rng.gauss(0, 1) for _ in range(1500)] + [rng.gauss(1.5, 1) for _ in range(500)]
    ours, theirs = TabulatedKSWIN(alpha=1e-3, seed=5), drift.KSWIN(alpha=1e-3, seed=5)
    found_ours, found_theirs = [], []
    for i, x in enumerate(data):
        ours.update(x)
        theirs.update(x)
        found_ours += [i] if ours.drift_detected else []
        found_theirs += [i] if theirs.drift_detected else []
    assert found_ours == found_theirs and found_ours


@pytest.mark.parametrize("name", ["adwin", "page_hinkley", "kswin"])
def test_streaming_detectors_stay_quiet_without_drift_and_fire_after_a_mean_shift(name: str) -> None:
    rng = np.random.default_rng(12)
    detector = StreamingDrift(name, mean=0.0, std=1.0, block=50, alpha=1e-6, arl=1e7)  # type: ignore[arg-type]
    quiet = [t for s in range(0, 100_000, 500) for t in detector.update_many(rng.normal(0, 1, 500)).tests]
    assert quiet == []
    shifted = rng.normal(0.5, 1, 20_000)
    fired = [s + t.position for s in range(0, 20_000, 500) for t in detector.update_many(shifted[s : s + 500]).tests]
    assert fired and fired[0] < 10_000


def test_streaming_bank_block_means_ignore_missing_values() -> None:
    bank = StreamingBank({"a": (0.0, 1.0)}, ("page_hinkley",), block=10, arl=1e6)
    values = np.array([np.nan] * 5 + [0.0] * 10).reshape(-1, 1)
    assert bank.update_many(values) == []
    assert bank.statistics()[0][:2] == ("a", "page_hinkley")


@pytest.mark.parametrize(
    "make",
    [
        lambda: NumericDrift(np.linspace(0, 1, 500), window=100, hop=50),
        lambda: CategoricalDrift({"a": 0.7, "b": 0.3}, 1000, window=100, hop=50),
        lambda: StreamingDrift("kswin", 0.5, 0.3, block=5, alpha=1e-3, seed=1),
        lambda: PredictionDrift("numeric", window=100, hop=50, lag=200, reference_size=200),
    ],
    ids=["numeric", "categorical", "kswin", "prediction"],
)
def test_conformance_pickle_round_trip_continues_identically_and_inputs_are_not_mutated(make) -> None:  # noqa: ANN001
    rng = np.random.default_rng(13)
    categorical = isinstance(make(), CategoricalDrift)
    data = [str(v) for v in rng.choice(["a", "b"], 2000)] if categorical else rng.uniform(0, 1, 2000)
    detector = make()
    detector.update_many(data[:1000])
    clone = pickle.loads(pickle.dumps(detector))
    rest = data[1000:]
    before = copy.copy(rest) if categorical else rest.copy()

    def results(d: object) -> list[tuple[str, float, int]]:
        out = []
        for s in range(0, 1000, 100):
            tests = d.update_many(rest[s : s + 100]).tests  # type: ignore[attr-defined]
            out += [(t.test, round(t.statistic, 12), t.position) for t in tests]
        return out

    assert results(detector) == results(clone)
    assert list(rest) == list(before)
    again = make()
    again.update_many(data[:1000])
    assert results(again) == results(pickle.loads(pickle.dumps(make().update_many(data[:1000]))))
