"""The learning monitor's batch paths equal the ones they replaced, bit for bit: the CUSUM's in-place steps, the
window metrics sorted once, the calibrator's knots converted once, the positive-class scores and matches read at
once, and the outcome history from the gauges it keeps. The replaced code is copied here as the reference."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.reference import ReferenceProfile
from driftline.monitoring import cbpe
from driftline.monitoring.cbpe import Calibrator, estimate, realised, window_metrics
from driftline.monitoring.concept import BernoulliCUSUM
from driftline.monitoring.history import History
from driftline.monitoring.monitor import Monitor, MonitorConfig, _errors, _matching, _positive_scores, _same

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------------ references


def _old_auc(scores: np.ndarray, positive_weight: np.ndarray) -> float:
    if scores.size == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    s, w = scores[order], positive_weight[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.r_[0.0, np.cumsum(w)[last]]
    fp = np.r_[0.0, np.cumsum(1 - w)[last]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return math.nan
    x, y = fp / fp[-1], tp / tp[-1]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def _old_run(cusum: BernoulliCUSUM, errors: np.ndarray) -> int | None:
    head = min(errors.size, max(0, cusum.warmup - cusum.n))
    if head:
        cusum._learn(errors[:head])
    rest = errors[head:]
    if rest.size == 0:
        return None
    p0 = min(0.99, max(1e-4, cusum.baseline))
    p1 = cusum.odds_ratios * p0 / (1 - p0 + cusum.odds_ratios * p0)
    up, down = np.log(p1 / p0), np.log((1 - p1) / (1 - p0))
    steps = np.where(rest[None, :] > 0, up[:, None], down[:, None])
    cumulative = np.cumsum(steps, axis=1)
    floor = np.minimum(np.minimum.accumulate(cumulative, axis=1), -cusum.sums[:, None])
    sums = cumulative - floor
    above = np.flatnonzero((sums > cusum.threshold).any(axis=0))
    if above.size:
        fired = int(above[0])
        cusum._learn(rest[: fired + 1])
        return head + fired
    cusum.sums = sums[:, -1]
    cusum._learn(rest)
    return None


class _OldCUSUM(BernoulliCUSUM):
    def _run(self, errors: np.ndarray) -> int | None:
        return _old_run(self, errors)


def _old_matching(values: list[Any], positive: Any) -> np.ndarray:
    if set(map(type, values)) == {bool}:
        return np.where(np.array(values, dtype=bool), _same(True, positive), _same(False, positive))
    return np.array([_same(v, positive) for v in values], dtype=bool)


def _same_bits(a: Any, b: Any) -> bool:
    """Equal, NaN and the sign of zero included (``repr`` of floats round-trips)."""
    return repr(a) == repr(b)


# ------------------------------------------------------------------------------------------------ CUSUM


@SETTINGS
@given(
    rates=st.lists(st.sampled_from([0.0, 0.02, 0.1, 0.4, 0.9, 1.0]), min_size=1, max_size=5),
    size=st.integers(1, 800),
    cuts=st.lists(st.integers(0, 4000), max_size=10),
    arl=st.sampled_from([1e2, 1e4, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_cusum_in_place_equals_the_copying_steps(rates, size, cuts, arl, seed) -> None:
    rng = np.random.default_rng(seed)
    errors = np.concatenate([(rng.random(size) < r).astype(float) for r in rates])
    new, old = BernoulliCUSUM(arl=arl, warmup=50), _OldCUSUM(arl=arl, warmup=50)
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), errors.size], strict=False):
        new.update_many(errors[start:end])
        old.update_many(errors[start:end])
        assert new.detections == old.detections
        assert new.sums.tobytes() == old.sums.tobytes() and (new.n, new.baseline) == (old.n, old.baseline)
    assert pickle.loads(pickle.dumps(new)).sums.tolist() == old.sums.tolist()


# ------------------------------------------------------------------------------------------------ CBPE windows

SCORES = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0, -0.0, math.nan, math.inf, 1e-9])


@SETTINGS
@given(
    scores=st.lists(st.one_of(SCORES, st.floats(0, 1)), min_size=1, max_size=300),
    seed=st.integers(0, 2**16),
    method=st.sampled_from(["platt", "isotonic", None, "identity"]),
    one_class=st.booleans(),
)
def test_window_metrics_equal_estimate_and_realised(scores, seed, method, one_class) -> None:
    rng = np.random.default_rng(seed)
    s = np.asarray(scores, dtype=float)
    y = np.ones(s.size, dtype=bool) if one_class else rng.random(s.size) < 0.5
    predicted = rng.random(s.size) < 0.5
    fit_on = rng.random(200)
    if method == "identity":
        calibrator = Calibrator.identity()
    else:
        calibrator = Calibrator.fit(fit_on, rng.random(200) < fit_on, method=method)
    got = window_metrics(calibrator, s, y, predicted)
    want = estimate(calibrator.transform(s), predicted=predicted), realised(s, y, predicted=predicted)
    assert _same_bits(got, want)


@SETTINGS
@given(scores=st.lists(st.one_of(SCORES, st.floats(0, 1)), max_size=200), seed=st.integers(0, 2**16))
def test_auc_without_index_tricks_equals_the_old_one(scores, seed) -> None:
    s = np.asarray(scores, dtype=float)
    s = s[~np.isnan(s)]
    rng = np.random.default_rng(seed)
    for weights in ((rng.random(s.size) < 0.5).astype(float), rng.random(s.size), s):
        assert _same_bits(cbpe._auc(s, weights), _old_auc(s, weights))


def test_the_calibrators_converted_knots_stay_out_of_its_checkpoint() -> None:
    rng = np.random.default_rng(0)
    s = rng.random(500)
    calibrator = Calibrator.fit(s, rng.random(500) < s, method="platt")
    before = pickle.dumps(calibrator)
    first = calibrator.transform(s)
    assert pickle.dumps(calibrator) == before  # the knots converted by transform are not pickled
    restored = pickle.loads(before)
    assert restored == calibrator and restored.transform(s).tobytes() == first.tobytes()
    assert first.tobytes() == np.interp(s, calibrator.x, calibrator.y).tobytes()


# ------------------------------------------------------------------------------------------------ columns

VALUES = st.sampled_from([True, False, np.True_, np.False_, 1, 0, "True", "false", 1.0, None])


@SETTINGS
@given(values=st.lists(VALUES, min_size=1, max_size=40), positive=st.sampled_from([True, False, "True", 1, "1", 0]))
def test_matching_from_the_callers_array_equals_matching_each_value(values, positive) -> None:
    array = np.asarray(values) if len({type(v) for v in values}) < 3 else np.asarray(values, dtype=object)
    assert _matching(values, positive, array).tolist() == _old_matching(values, positive).tolist()
    assert _matching(values, positive).tolist() == _old_matching(values, positive).tolist()


PROBABILITY = st.one_of(
    st.none(),
    st.just({}),
    st.fixed_dictionaries({"False": st.floats(allow_nan=True), "True": st.floats(allow_nan=True)}),
    st.fixed_dictionaries({"False": st.floats(0, 1)}),
    st.fixed_dictionaries({"True": st.one_of(st.integers(0, 1), st.none(), st.floats(0, 1))}),
)


@SETTINGS
@given(probabilities=st.lists(PROBABILITY, min_size=1, max_size=30), positive=st.sampled_from(["True", True]))
def test_positive_scores_at_once_equal_them_one_by_one(probabilities, positive) -> None:
    want = np.array([p.get(positive, math.nan) if p else math.nan for p in probabilities], dtype=float)
    assert _positive_scores(probabilities, positive).tobytes() == want.tobytes()


@SETTINGS
@given(truth=st.lists(VALUES, min_size=1, max_size=30), seed=st.integers(0, 99))
def test_errors_from_the_callers_arrays_equal_them_converted_again(truth, seed) -> None:
    predicted = list(np.random.default_rng(seed).permutation(np.array(truth, dtype=object)))
    want = _errors(truth, predicted)
    assert _errors(truth, predicted, np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)).tolist() == (
        want.tolist()
    )
    if len({type(v) for v in truth}) == 1:
        assert _errors(truth, predicted, np.asarray(truth), np.asarray(predicted)).tolist() == want.tolist()


# ------------------------------------------------------------------------------------------------ history


def _outcome_stream(n: int) -> list[tuple]:
    model, schema, _ = bootstrap_model(samples=300)
    rows = []
    for event, label in synthetic_stream(n, drift_at=n // 2, start_ms=1_000):
        score = float(model.predict_proba_one(schema.prepare(event["features"])).get(True, 0.0))
        rows.append((event, label, score))
    return rows


@pytest.mark.parametrize(
    ("task", "detectors"),
    [
        ("binary", None),
        ("binary", ("data_drift", "concept_drift")),
        ("multiclass", ("data_quality", "performance")),
        ("regression", None),
    ],
)
def test_outcome_history_equals_the_one_from_every_gauge(task, detectors) -> None:
    """The rows the learning monitor's history records from its own gauges equal those from :meth:`gauges`."""
    stream = _outcome_stream(6000)
    _, schema, _ = bootstrap_model(samples=300)
    reference = ReferenceProfile.from_rows([schema.prepare(e["features"]) for e, _, _ in stream[:1000]], schema)
    config = MonitorConfig(performance_window=500, hop=100)
    if detectors is not None:
        config = MonitorConfig(performance_window=500, hop=100, detectors=detectors)
    monitor = Monitor("m", schema, task, reference, config)
    full = History(config.hop, kinds=monitor.outcome_history.kinds)
    for start in range(0, len(stream), 333):
        part = stream[start : start + 333]
        ids = [e["event_id"] for e, _, _ in part]
        if task == "regression":
            truth, served, probabilities = [s * 2 for *_, s in part], [s for *_, s in part], [None] * len(part)
        else:
            truth, served = [y for _, y, _ in part], [s >= 0.5 for *_, s in part]
            probabilities = [{"False": 1 - s, "True": s} for *_, s in part]
        ts = [e["ts"] + 50 for e, _, _ in part]
        monitor.observe_outcomes(
            ids, truth, served, probabilities, 1 + start // 1000, ts, [e["ts"] for e, _, _ in part]
        )
        full.observe(monitor.outcomes, monitor.event_time, monitor.gauges)
        assert _same_bits(monitor.outcome_history.to_dict(), full.to_dict())
    assert len(full.events) == 19 and full.series  # one point a batch, of the series it keeps
