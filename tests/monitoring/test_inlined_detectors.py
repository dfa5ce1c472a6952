"""DDM, EDDM and ADWIN updated inlined (monitoring/concept.py) equal River's own updates one error at a time: the same
detections at the same positions, warnings, resets and every float of their state."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.monitoring import concept
from driftline.monitoring.concept import ERROR_STREAM_FACTORIES


def _stream(rates: list[float], lengths: list[int], seed: int) -> np.ndarray:
    """0/1 errors in regimes of the given rates: rising rates make DDM and EDDM warn, detect and reset."""
    rng = np.random.default_rng(seed)
    return np.concatenate([(rng.random(n) < r).astype(float) for r, n in zip(rates, lengths, strict=True)])


def _run(name: str, errors: np.ndarray, cuts: list[int], grace: int, inlined: bool) -> list[tuple]:
    detector = ERROR_STREAM_FACTORIES[name](1e-3, 1e4, grace)
    saved = dict(concept._INLINED)
    if not inlined:
        concept._INLINED.clear()
    try:
        seen = []
        for start, end in zip([0, *cuts], [*cuts, errors.size], strict=True):
            detector.update_many(errors[start:end])
            river = detector.detector
            seen.append(
                (
                    detector.detections,
                    detector._since_reset,
                    river.drift_detected,
                    getattr(river, "warning_detected", None),
                )
            )
            seen.append(pickle.dumps(vars(river)))  # every float of the state, bit for bit
    finally:
        concept._INLINED.update(saved)
    return seen


@pytest.mark.parametrize("name", ["ddm", "eddm", "adwin"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rates=st.lists(st.sampled_from([0.02, 0.1, 0.3, 0.5, 0.8, 0.95]), min_size=1, max_size=6),
    lengths=st.lists(st.integers(1, 1500), min_size=6, max_size=6),
    cuts=st.lists(st.integers(0, 9000), max_size=8),
    grace=st.sampled_from([0, 30, 1000]),
    seed=st.integers(0, 2**16),
)
def test_inlined_updates_equal_rivers_one_by_one(name, rates, lengths, cuts, grace, seed) -> None:
    errors = _stream(rates, lengths[: len(rates)], seed)
    cuts = sorted({c for c in cuts if c <= errors.size})
    assert _run(name, errors, cuts, grace, inlined=True) == _run(name, errors, cuts, grace, inlined=False)


@pytest.mark.parametrize("name", ["ddm", "eddm", "adwin"])
def test_a_rising_error_rate_is_detected_and_reset_the_same_way_inlined(name) -> None:
    errors = _stream([0.05, 0.9, 0.05, 0.9], [3000, 3000, 3000, 3000], 3)
    inlined = _run(name, errors, [500, 4000, 7777], 0, inlined=True)
    assert inlined == _run(name, errors, [500, 4000, 7777], 0, inlined=False)
    assert sum(len(batch[0]) for batch in inlined[::2]) >= 1  # a detection, and the reset after it, were compared
    assert type(ERROR_STREAM_FACTORIES[name](1e-3, 1e4, 0).detector) in concept._INLINED


def test_adwin_improvements_are_logged_not_detected_the_same_way_inlined(caplog) -> None:
    errors = _stream([0.9, 0.05, 0.9, 0.05], [3000, 3000, 3000, 3000], 5)
    with caplog.at_level("INFO", logger=concept.__name__):
        inlined = _run("adwin", errors, [100, 3500, 6000], 0, inlined=True)
    logged = [r.getMessage() for r in caplog.records]
    caplog.clear()
    with caplog.at_level("INFO", logger=concept.__name__):
        assert inlined == _run("adwin", errors, [100, 3500, 6000], 0, inlined=False)
    assert logged == [r.getMessage() for r in caplog.records]
    assert any("improvement" in m for m in logged) and sum(len(batch[0]) for batch in inlined[::2]) >= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.sampled_from([0.0, 1.0, 1.0, 0.5, 2.0, float("nan")]), max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    grace=st.sampled_from([0, 30]),
)
def test_inlined_eddm_equals_rivers_on_any_values(values, cuts, grace) -> None:
    """Not only 0/1 (what a binary monitor feeds): EDDM counts only the ones as errors, the rest as outcomes (DDM
    fails on values outside [0, 1], River's own as the inlined one)."""
    name = "eddm"
    errors = np.asarray(values, dtype=float)
    cuts = sorted({c for c in cuts if c <= errors.size})
    assert _run(name, errors, cuts, grace, inlined=True) == _run(name, errors, cuts, grace, inlined=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    size=st.integers(1, 400),
    rate=st.sampled_from([0.05, 0.5, 0.95, 1.0]),
    cuts=st.lists(st.integers(0, 12_000), max_size=30),
)
def test_eddm_detections_in_the_last_outcome_or_in_runs_of_errors_equal_rivers(seed, size, rate, cuts) -> None:
    """EDDM fires often on these (warm start 300 errors): drifts at a batch's last outcome, a batch that ends on an
    error, batches of no error."""
    rng = np.random.default_rng(seed)
    errors = np.concatenate([(rng.random(size) < r).astype(float) for r in (0.02, rate, 0.02, 1.0, 0.0, rate)] * 6)
    cuts = sorted({c for c in cuts if c <= errors.size})
    assert _run("eddm", errors, cuts, 0, inlined=True) == _run("eddm", errors, cuts, 0, inlined=False)
