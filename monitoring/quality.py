"""Data quality as rolling rates compared with the reference: missing values, out-of-range values, unseen
categories and schema violations (dead-lettered events).

Each check counts events over the last ``window`` events and asks whether the count is too high for the
reference rate: a binomial upper-tail test ``P(X >= k | n, p_ref)`` at the budget-corrected level, gated by a
minimal excess ``rate - p_ref >= min_excess`` so that a statistically clear but negligible change (0.1% more
missing values) does not page anyone: the score is the smaller of the evidence score and ``excess / min_excess``.
Reference rates: the profile's missing rate; for out-of-range values the chance ``2 / (m + 1)`` that a new value
falls outside the min..max of ``m`` reference values; for unseen categories the Good-Turing estimate (share of
categories seen once); for schema violations ``1 / (rows + 1)``.

Examples
--------
>>> checks = [QualityCheck("missing", "x", 0.01), QualityCheck("schema", None, 0.0001)]
>>> quality = DataQuality(checks, window=1000, hop=500, alpha=1e-4, min_excess=0.02)
>>> [t.test for t in quality.update(events=500, counts=np.array([6, 0]))]  # 1.2% missing, as expected
['missing', 'schema']
>>> [(t.test, round(t.statistic, 3)) for t in quality.update(500, np.array([40, 0])) if t.rejected]
[('missing', 0.046)]
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

from driftline.monitoring.window import MIN_P_VALUE, WindowTest

QualityKind = Literal["missing", "out_of_range", "unseen", "schema"]


@dataclass(frozen=True)
class QualityCheck:
    """One rolling-rate check: its kind, the feature it watches (None for schema) and the reference rate."""

    kind: QualityKind
    feature: str | None
    reference_rate: float


def out_of_range_rate(reference_values: int) -> float:
    """Chance that a new value falls outside the range of ``reference_values`` exchangeable values.

    >>> out_of_range_rate(999)
    0.002
    """
    return 2 / (reference_values + 1)


def unseen_rate(frequencies: dict[str, float], reference_values: int) -> float:
    """Good-Turing chance that the next value is a category the reference never saw.

    >>> unseen_rate({"a": 0.998, "b": 0.001, "c": 0.001}, 1000)  # two categories seen once in 1000
    0.002
    """
    if reference_values <= 0:
        return 1.0
    singletons = sum(1 for f in frequencies.values() if round(f * reference_values) <= 1)
    return singletons / reference_values if singletons else 1 / (reference_values + 1)


class DataQuality:
    """Rolling-rate data-quality checks over the last ``window`` events.

    Parameters
    ----------
    checks
        The checks, in the order of the counts passed to :meth:`update`.
    window
        Events the rates are computed over (whole batches: the window holds at least ``window`` events).
    hop
        Evaluate at most once every ``hop`` events.
    alpha
        Level of each test (budget-corrected).
    min_excess
        Smallest ``rate - reference_rate`` that can alert.
    """

    def __init__(
        self,
        checks: Sequence[QualityCheck],
        window: int = 1000,
        hop: int = 250,
        alpha: float = 1e-4,
        min_excess: float = 0.01,
    ):
        self.checks = list(checks)
        self.window, self.hop, self.alpha, self.min_excess = window, hop, alpha, min_excess
        self._reference = np.array([max(c.reference_rate, 1e-9) for c in self.checks])
        self._chunks: deque[tuple[int, np.ndarray]] = deque()
        self._events = 0
        self._counts = np.zeros(len(self.checks), dtype=np.int64)
        self._since = 0
        self.rates = np.zeros(len(self.checks))
        self.tests: list[WindowTest] = []

    def update(self, events: int, counts: np.ndarray, position: int = -1) -> list[WindowTest]:
        """Add a batch of ``events`` with ``counts`` per check; the tests run now (empty between hops)."""
        counts = np.asarray(counts, dtype=np.int64)
        self._chunks.append((events, counts))
        self._events += events
        self._counts += counts
        while len(self._chunks) > 1 and self._events - self._chunks[0][0] >= self.window:
            old_events, old_counts = self._chunks.popleft()
            self._events -= old_events
            self._counts -= old_counts
        self._since += events
        self.tests = []
        if self._since < self.hop or self._events == 0:
            return self.tests
        self._since = 0
        self.tests = self._evaluate(position)
        return self.tests

    def _evaluate(self, position: int) -> list[WindowTest]:
        n = self._events
        k = self._counts.astype(float)
        p_ref = self._reference
        self.rates = k / n
        tail = np.where(k > 0, special.bdtrc(np.maximum(k - 1, 0), n, p_ref), 1.0)
        p_values = np.clip(tail, 0.0, 1.0)
        evidence = np.log(np.maximum(p_values, MIN_P_VALUE)) / math.log(self.alpha)
        excess = self.rates - p_ref
        effect = excess / self.min_excess if self.min_excess > 0 else np.where(excess > 0, np.inf, 0.0)
        scores = np.minimum(evidence, np.maximum(effect, 0.0))  # past threshold only when both are
        thresholds = p_ref + self.min_excess
        near = scores >= 0.5  # the exact binomial critical rate only where an alert is plausible (it is slow)
        if near.any():
            critical = (special.bdtrik(1 - self.alpha, n, p_ref[near]) + 1) / n
            thresholds[near] = np.maximum(thresholds[near], np.nan_to_num(critical, nan=1.0))
        return [
            WindowTest(check.kind, float(rate), float(threshold), float(p), float(score), n, position)
            for check, rate, threshold, p, score in zip(
                self.checks, self.rates, thresholds, p_values, scores, strict=True
            )
        ]
