"""BatchDrift: one summary whatever the chunking, no drift on the reference's own distribution, drift on a shift."""

from __future__ import annotations

import numpy as np

from driftline.models.reference import ReferenceProfile
from driftline.monitoring.batch_drift import PREDICTION, BatchDrift

rng = np.random.default_rng(3)
REFERENCE = ReferenceProfile.from_rows(
    [{"x": float(v), "c": str(c)} for v, c in zip(rng.normal(0, 1, 3000), rng.choice(list("abc"), 3000), strict=True)],
    predictions=rng.uniform(0, 1, 3000).tolist(),
)


def batch(n: int, shift: float, weights: list[float]) -> dict[str, list]:
    return {
        "x": [None if i % 50 == 0 else float(v) for i, v in enumerate(rng.normal(shift, 1, n))],
        "c": [str(c) for c in rng.choice(list("abcd"), n, p=weights)],
        PREDICTION: rng.uniform(0, 1, n).tolist(),
    }


def summarise(data: dict[str, list], chunk: int) -> dict:
    drift = BatchDrift(REFERENCE)
    n = len(data["x"])
    for start in range(0, n, chunk):
        part = {k: v[start : start + chunk] for k, v in data.items()}
        drift.update(part, part[PREDICTION])
    return {d.feature: d for d in drift.summary()}


def test_the_summary_does_not_depend_on_the_chunking() -> None:
    data = batch(5000, 0.0, [0.3, 0.3, 0.3, 0.1])
    assert summarise(data, 5000) == summarise(data, 333)


def test_the_reference_distribution_does_not_drift_and_a_shift_does() -> None:
    same = summarise(batch(20_000, 0.0, [1 / 3, 1 / 3, 1 / 3, 0.0]), 4000)
    assert not any(d.drifted for d in same.values())
    assert same["x"].missing_rate == 400 / 20_000 and same["x"].reference_missing_rate == 0.0
    shifted = summarise(batch(20_000, 0.5, [0.1, 0.1, 0.2, 0.6]), 4000)
    assert shifted["x"].drifted and shifted["x"].psi > 0.1
    assert shifted["c"].drifted and shifted["c"].outside_rate > 0.5  # "d" was never seen
    assert not shifted[PREDICTION].drifted
