"""Drift of a whole batch (a scored file) against the reference profile, accumulated chunk by chunk (pure).

The stream's detectors test sliding windows; a batch is one sample, as large as the file. :class:`BatchDrift`
keeps counts only (no values), so a file larger than memory is summarised in constant space:

* a **numeric** feature is binned on the reference's PSI bins (:func:`~driftline.monitoring.drift_numeric.psi_edges`)
  and on a grid of reference quantiles; PSI and the Kolmogorov-Smirnov distance on that grid (a lower bound of the
  exact one) follow, with the same p-values as the stream's tests;
* a **categorical** feature is counted per reference category (plus unseen and missing): chi-square test, with
  the Jensen-Shannon distance as effect size;
* the missing rate, the rate outside the reference range (numeric) or of unseen categories, next to the
  reference's;
* the **prediction** (positive-class score, predicted class or predicted value) against the profile's, when the
  reference has one.

A batch of a million rows makes any difference significant, so a feature is reported as drifted only when its
test rejects at ``alpha`` (Bonferroni-corrected over the tests of the summary) **and** the effect is at least
moderate: PSI >= 0.1 (the usual "moderate shift" mark) or a Jensen-Shannon distance >= 0.1.

Examples
--------
>>> import random
>>> from driftline.models.reference import ReferenceProfile
>>> rng = random.Random(0)
>>> reference = ReferenceProfile.from_rows(
...     [{"x": rng.gauss(0, 1), "c": rng.choice("ab")} for _ in range(2000)])
>>> drift = BatchDrift(reference)
>>> for _ in range(3):  # three chunks; x shifted by one standard deviation, c unchanged
...     chunk = [{"x": rng.gauss(1, 1), "c": rng.choice("ab")} for _ in range(1000)]
...     drift.update({"x": [r["x"] for r in chunk], "c": [r["c"] for r in chunk]})
>>> [(f.feature, f.rows, f.drifted) for f in drift.summary()]
[('x', 3000, True), ('c', 3000, False)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from driftline.models.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.monitoring.drift_categorical import js_distance, pooled_chi_square
from driftline.monitoring.drift_numeric import KS_GRID, NumericReference, ks_scale, psi, psi_edges, smoothed_fractions

#: Effect sizes a drifted feature must reach besides significance (PSI's conventional "moderate" mark).
MIN_PSI = 0.1
MIN_JS = 0.1
#: Name of the model output in the summary.
PREDICTION = "(prediction)"


@dataclass(frozen=True)
class FeatureDrift:
    """The batch-against-reference comparison of one feature (or of the prediction)."""

    feature: str
    kind: str
    rows: int
    missing_rate: float
    reference_missing_rate: float
    #: Share of present values outside the reference range (numeric) or of categories it never saw.
    outside_rate: float
    test: str
    p_value: float
    psi: float | None = None
    ks: float | None = None
    js: float | None = None
    drifted: bool = False

    @property
    def effect(self) -> float:
        """PSI (numeric) or Jensen-Shannon distance (categorical)."""
        return float(self.psi if self.psi is not None else self.js or 0.0)


class _Numeric:
    """Counts of one numeric column on the reference's PSI bins and KS grid."""

    def __init__(self, profile: NumericProfile):
        self.profile = profile
        reference = NumericReference.of(profile.sample, profile.quantiles or None)
        self.sample = reference.sample
        self.edges = psi_edges(reference)
        levels = np.linspace(0, 1, KS_GRID + 1)
        self.grid = np.unique(np.concatenate([np.quantile(self.sample, levels, method="inverted_cdf"), self.edges]))
        self.reference_cdf = np.searchsorted(self.sample, self.grid, "right") / self.sample.size
        bins = self.edges.size + 1
        reference_bins = np.bincount(np.searchsorted(self.edges, self.sample, "left"), minlength=bins)
        self.expected = smoothed_fractions(reference_bins)
        self.psi_counts = np.zeros(bins, dtype=np.int64)
        self.grid_counts = np.zeros(self.grid.size + 1, dtype=np.int64)
        self.rows = self.missing = self.outside = 0

    def update(self, values: Sequence[Any]) -> None:
        try:
            array = np.asarray(values, dtype=float)  # None becomes NaN
        except (TypeError, ValueError):
            array = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
        present = array[~np.isnan(array)]
        self.rows += array.size
        self.missing += array.size - present.size
        self.outside += int(np.count_nonzero((present < self.profile.minimum) | (present > self.profile.maximum)))
        self.psi_counts += np.bincount(np.searchsorted(self.edges, present, "left"), minlength=self.psi_counts.size)
        self.grid_counts += np.bincount(np.searchsorted(self.grid, present, "left"), minlength=self.grid_counts.size)

    def result(self, name: str) -> FeatureDrift:
        n = self.rows - self.missing
        m = self.sample.size
        psi_value = ks = None
        p_value = 1.0
        if n > 0:
            bins = self.psi_counts.size
            psi_value = psi(self.expected, smoothed_fractions(self.psi_counts))
            ks = float(np.max(np.abs(np.cumsum(self.grid_counts)[:-1] / n - self.reference_cdf)))
            n_eff = n * m / (n + m)
            p_psi = float(special.chdtrc(bins - 1, n_eff * psi_value)) if bins > 1 else 1.0
            p_ks = float(min(1.0, special.kolmogorov(ks_scale(n, m) * ks)))
            p_value = min(1.0, 2 * min(p_psi, p_ks))  # two tests on one feature: Bonferroni
        return FeatureDrift(
            name,
            "numeric",
            self.rows,
            self.missing / self.rows if self.rows else 0.0,
            self.profile.missing_rate,
            self.outside / n if n else 0.0,
            "psi+ks",
            p_value,
            psi=psi_value,
            ks=ks,
        )


class _Categorical:
    """Counts of one categorical column per reference category, unseen and missing."""

    def __init__(self, profile: CategoricalProfile):
        self.profile = profile
        self.categories = list(profile.frequencies)
        self.index = {c: i for i, c in enumerate(self.categories)}
        self.counts = np.zeros(len(self.categories) + 2, dtype=np.int64)  # ..., unseen, missing

    def update(self, values: Sequence[Any]) -> None:
        unseen, missing = len(self.categories), len(self.categories) + 1
        index = self.index
        buckets = np.fromiter(
            (missing if v is None else index.get(str(v), unseen) for v in values), dtype=np.int64, count=len(values)
        )
        self.counts += np.bincount(buckets, minlength=self.counts.size)

    def result(self, name: str) -> FeatureDrift:
        rows = int(self.counts.sum())
        seen = self.counts[:-1].astype(float)
        n = float(seen.sum())
        p = np.array([self.profile.frequencies[c] for c in self.categories] + [0.0])
        p /= p.sum() or 1.0
        js = p_value = None
        if n > 0:
            js = js_distance(seen / n, p)
            m = max(1, int(self.profile.count * (1 - self.profile.missing_rate)))
            p_value = pooled_chi_square(seen, p, m)[2]
        return FeatureDrift(
            name,
            "categorical",
            rows,
            float(self.counts[-1]) / rows if rows else 0.0,
            self.profile.missing_rate,
            float(seen[-1]) / n if n else 0.0,
            "chi2",
            1.0 if p_value is None else p_value,
            js=js,
        )


class BatchDrift:
    """Accumulates a batch chunk by chunk and compares it with ``reference`` (see the module docstring)."""

    def __init__(self, reference: ReferenceProfile, alpha: float = 0.01):
        self.alpha = alpha
        self.columns: dict[str, _Numeric | _Categorical] = {
            name: _column(profile) for name, profile in reference.features.items() if _testable(profile)
        }
        self.prediction = _column(reference.prediction) if _testable(reference.prediction) else None

    def update(self, features: Mapping[str, Sequence[Any]], predictions: Sequence[Any] | None = None) -> None:
        """Add one chunk: the values of each feature (None is missing) and, optionally, the model's outputs."""
        for name, column in self.columns.items():
            values = features.get(name)
            if values is not None:
                column.update(values)
        if self.prediction is not None and predictions is not None:
            self.prediction.update(predictions)

    def summary(self) -> list[FeatureDrift]:
        """One :class:`FeatureDrift` per profiled feature (then the prediction), drift decided at ``alpha``."""
        results = [column.result(name) for name, column in self.columns.items()]
        if self.prediction is not None:
            results.append(self.prediction.result(PREDICTION))
        level = self.alpha / max(1, len(results))
        return [
            FeatureDrift(**{**r.__dict__, "drifted": r.p_value < level and _large(r)}) if r.rows else r for r in results
        ]


def _large(result: FeatureDrift) -> bool:
    if result.psi is not None:
        return result.psi >= MIN_PSI
    return (result.js or 0.0) >= MIN_JS


def _testable(profile: NumericProfile | CategoricalProfile | None) -> bool:
    if isinstance(profile, NumericProfile):
        return bool(profile.sample)
    return isinstance(profile, CategoricalProfile) and bool(profile.frequencies)


def _column(profile: Any) -> _Numeric | _Categorical:
    return _Numeric(profile) if isinstance(profile, NumericProfile) else _Categorical(profile)
