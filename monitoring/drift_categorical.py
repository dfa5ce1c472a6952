"""Data drift of one categorical stream: windowed chi-square test and Jensen-Shannon distance.

Every ``hop`` events the category counts of the last ``window`` events are compared with the reference
frequencies. Categories expected fewer than ``min_expected`` times in the window are pooled with categories the
reference never saw into one "other" bucket (dropped when even the pool is too rare for the chi-square law).
The statistic accounts for the reference being a sample too: ``chi2 = n_eff * sum((p_window - p_ref)^2 / p_ref)``
with ``n_eff = n m / (n + m)``. The Jensen-Shannon distance (base 2, in [0, 1]) over all categories, unseen
ones included, is reported as the effect size; the unseen-category *rate* is a data-quality check
(:mod:`driftline.monitoring.quality`).

Examples
--------
>>> import random
>>> rng = random.Random(0)
>>> detector = CategoricalDrift({"a": 0.5, "b": 0.3, "c": 0.2}, reference_count=10_000, alpha=1e-5)
>>> before = rng.choices("abc", weights=[5, 3, 2], k=3000)
>>> after = rng.choices("abc", weights=[3, 3, 4], k=2000)  # drift at event 3000
>>> for i, value in enumerate(before + after):
...     if detector.update(value).drift_detected:
...         print(f"drift detected at {i}, JS distance {detector.js_distance:.2f}")
...         break
drift detected at 3249, JS distance 0.13
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import special

from driftline.monitoring.window import BinnedWindow, LatestTests, WindowTest, evidence_score, hop_chunks


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) between two probability vectors.

    >>> js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    1.0
    """
    mix = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / mix), 0.0)
        right = np.where(q > 0, q * np.log2(q / mix), 0.0)
    return float(math.sqrt(max(0.0, (left.sum() + right.sum()) / 2)))


def pooled_chi_square(
    counts: np.ndarray, p: np.ndarray, reference_count: int, min_expected: float = 5.0
) -> tuple[float, int, float]:
    """Chi-square test of category ``counts`` (the last one: unseen) against reference fractions ``p`` (the last
    one 0), as ``(statistic, degrees of freedom, p-value)``.

    Categories expected fewer than ``min_expected`` times are pooled with the unseen ones (kept when the pool is
    expected often enough); the statistic is scaled to the two-sample effective size of the counts and the
    ``reference_count`` values behind ``p``. Fewer than two cells give ``(0.0, 0, 1.0)``.

    >>> statistic, df, p_value = pooled_chi_square(np.array([90.0, 10.0, 0.0]), np.array([0.5, 0.5, 0.0]), 1000)
    >>> df, p_value < 1e-10
    (1, True)
    """
    n = float(counts.sum())
    frequent = n * p[:-1] >= min_expected
    observed = list(counts[:-1][frequent])
    probs = list(p[:-1][frequent])
    rare_p = float(p[:-1][~frequent].sum())
    if n * rare_p >= min_expected:
        observed.append(float(counts[:-1][~frequent].sum() + counts[-1]))
        probs.append(rare_p)
    obs, prob = np.array(observed, dtype=float), np.array(probs, dtype=float)
    used = float(obs.sum())
    df = len(obs) - 1
    if df < 1 or used == 0:
        return 0.0, 0, 1.0
    prob /= prob.sum()
    n_eff = used * reference_count / (used + reference_count)
    statistic = float(n_eff * np.sum((obs / used - prob) ** 2 / prob))
    return statistic, df, float(special.chdtrc(df, statistic))


class CategoricalDrift(LatestTests):
    """Windowed chi-square drift test of one categorical stream.

    Parameters
    ----------
    frequencies
        Reference category -> frequency (a profile's ``frequencies``).
    reference_count
        Non-missing values the frequencies were computed from.
    window, hop, alpha
        Events per window, evaluation period, level of each test (budget-corrected).
    min_expected
        Smallest expected count a category is tested on its own with.
    """

    tests_per_feature = 1

    def __init__(
        self,
        frequencies: Mapping[str, float],
        reference_count: int,
        window: int = 500,
        hop: int = 250,
        alpha: float = 1e-4,
        min_expected: float = 5.0,
    ):
        if not frequencies:
            raise ValueError("no reference categories")
        if not 0 < alpha < 1 or window < 2 or hop < 1:
            raise ValueError("need 0 < alpha < 1, window >= 2 and hop >= 1")
        total = sum(frequencies.values())
        self.categories = list(frequencies)
        self._index = {category: i for i, category in enumerate(self.categories)}
        self._p = np.array([frequencies[c] / total for c in self.categories] + [0.0])
        self._unseen = len(self.categories)
        self._missing = self._unseen + 1
        self.m = max(1, int(reference_count))
        self.window, self.hop, self.alpha, self.min_expected = window, hop, alpha, min_expected
        self._window = BinnedWindow(len(self.categories) + 2, window)
        self.seen = 0
        self.js_distance = 0.0
        self.tests: list[WindowTest] = []
        self._last: list[WindowTest] = []

    def indices(self, values: Sequence[str | None]) -> np.ndarray:
        """Bucket of each value: its reference category, unseen, or missing (``None``)."""
        index, unseen, missing = self._index, self._unseen, self._missing
        return np.fromiter(
            (missing if v is None else index.get(v, unseen) for v in values), dtype=np.int64, count=len(values)
        )

    def update(self, x: str | None) -> CategoricalDrift:
        """Add one value (``None`` is missing)."""
        return self.update_many([x])

    def update_many(self, values: Sequence[str | None]) -> CategoricalDrift:
        """Add values; :attr:`tests` holds the evaluations this call ran (``position`` indexes ``values``)."""
        return self.update_indices(self.indices(values))

    def prime(self, values: Sequence[str | None]) -> CategoricalDrift:
        """Fill the window with past values without testing (after a change of reference)."""
        self._window.push(self.indices(list(values)[-self.window :]))
        self.seen += len(values)
        return self

    def update_indices(self, idx: np.ndarray) -> CategoricalDrift:
        """Add bucket indices from :meth:`indices`."""
        self.tests = []
        for start, stop, evaluate in hop_chunks(self.seen, len(idx), self.hop):
            self._window.push(idx[start:stop])
            if evaluate:
                self._last = [self._evaluate(stop - 1)]
                self.tests.extend(self._last)
        self.seen += len(idx)
        return self

    def distributions(self) -> dict[str, list]:
        """``categories`` (the reference's, then ``"(unseen)"``) with their ``reference`` and ``window`` fractions
        (missing values excluded; the window's are all zeros when it is empty).

        >>> detector = CategoricalDrift({"a": 0.5, "b": 0.5}, reference_count=100, window=4, hop=4)
        >>> detector.update_many(["a", "a", "z", None]).distributions()["window"]
        [0.6666666666666666, 0.0, 0.3333333333333333]
        """
        counts = self._window.counts[: self._missing].astype(float)
        n = float(counts.sum())
        return {
            "categories": [*self.categories, "(unseen)"],
            "reference": self._p.tolist(),
            "window": (counts / n if n else counts).tolist(),
        }

    def _evaluate(self, position: int) -> WindowTest:
        counts = self._window.counts[: self._missing].astype(float)
        n = float(counts.sum())
        if n == 0:
            return WindowTest("chi2", 0.0, math.inf, 1.0, 0.0, 0, position)
        self.js_distance = js_distance(counts / n, self._p)
        statistic, df, p_value = pooled_chi_square(counts, self._p, self.m, self.min_expected)
        if df < 1:
            return WindowTest("chi2", 0.0, math.inf, 1.0, 0.0, int(n), position)
        threshold = float(special.chdtri(df, self.alpha))
        return WindowTest("chi2", statistic, threshold, p_value, evidence_score(p_value, self.alpha), int(n), position)
