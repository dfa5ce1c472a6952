"""Model performance with and without labels: the label-free accuracy estimate that alerts, and the realised metric.

* :class:`ConfidenceEstimate`: a classifier whose probabilities are calibrated is right with probability equal to
  its top-class probability, so the mean top-class probability over a rolling window estimates accuracy *before*
  labels arrive (the monitor feeds it calibrated expected correctness once CBPE has a calibrator, see
  :mod:`driftline.monitoring.cbpe`). The first full window is the reference; a later window alerts
  (``performance``) when its estimate is lower by at least ``tolerance`` and the drop is significant (one-sided
  z-test at the corrected level).
* :class:`RealisedMetric`: accuracy (classifiers) or mean absolute error (regression) over the last ``window``
  joined labels, shown beside the estimate.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> estimate = ConfidenceEstimate(window=1000, hop=500, alpha=1e-4, tolerance=0.05)
>>> confident, unsure = rng.uniform(0.8, 1.0, 4000), rng.uniform(0.5, 0.8, 2000)  # confidence falls at 4000
>>> for start in range(0, 6000, 500):
...     batch = np.concatenate([confident, unsure])[start : start + 500]
...     fired = [t for t in estimate.update_many(batch).tests if t.rejected]
...     if fired:
...         print(f"estimated accuracy {fired[0].statistic:.2f} (reference {estimate.reference:.2f}) at {start + 499}")
...         break
estimated accuracy 0.78 (reference 0.90) at 4499
>>> metric = RealisedMetric("binary", window=3)
>>> round(metric.update_many(np.array([1.0, 0.0, 1.0, 1.0])).value, 4)  # errors -> accuracy of the last 3
0.3333
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from driftline.monitoring.window import WindowTest, evidence_score


class _Ring:
    """The last ``size`` floats."""

    def __init__(self, size: int):
        self.size = size
        self.data = np.zeros(size)
        self.n = 0
        self._pos = 0

    def push(self, values: np.ndarray) -> None:
        k = values.size
        if k >= self.size:
            self.data[:] = values[-self.size :]
            self.n, self._pos = self.size, 0
            return
        slots = np.arange(self._pos, self._pos + k) % self.size
        self.data[slots] = values
        self.n = min(self.size, self.n + k)
        self._pos = (self._pos + k) % self.size

    def values(self) -> np.ndarray:
        return self.data[: self.n] if self.n < self.size else self.data


class ConfidenceEstimate:
    """Label-free accuracy estimate of a classifier from its top-class probabilities.

    Parameters
    ----------
    window
        Predictions per rolling window (the first full one is the reference).
    hop
        Evaluate every ``hop`` predictions.
    alpha
        Level of the drop test (budget-corrected).
    tolerance
        Smallest drop of estimated accuracy that can alert.
    """

    def __init__(self, window: int = 1000, hop: int = 250, alpha: float = 1e-4, tolerance: float = 0.05):
        self.window, self.hop, self.alpha, self.tolerance = window, hop, alpha, tolerance
        self._ring = _Ring(window)
        self.seen = 0
        self.reference: float | None = None
        self._reference_var = 0.0
        self.estimate: float | None = None
        self.tests: list[WindowTest] = []

    def reset_reference(self) -> None:
        """Learn the reference again from the next full window (after a model change)."""
        self.reference = None
        self._ring = _Ring(self.window)

    @property
    def drift_detected(self) -> bool:
        """True when the latest update found a significant drop of estimated accuracy."""
        return any(t.rejected for t in self.tests)

    def update_many(self, confidences: np.ndarray) -> ConfidenceEstimate:
        """Add top-class probabilities (NaN ignored); :attr:`tests` holds the tests this call ran."""
        values = np.asarray(confidences, dtype=float)
        positions = np.flatnonzero(~np.isnan(values))
        values = values[positions]
        tests: list[WindowTest] = []
        start = 0
        while start < values.size:
            due = self.hop - self.seen % self.hop
            stop = min(values.size, start + due)
            self._ring.push(values[start:stop])
            self.seen += stop - start
            if stop - start == due:
                test = self._evaluate(int(positions[stop - 1]))
                if test is not None:
                    tests.append(test)
            start = stop
        self.tests = tests
        return self

    def _evaluate(self, position: int) -> WindowTest | None:
        data = self._ring.values()
        self.estimate = float(data.mean())
        if self._ring.n < self.window:
            return None
        if self.reference is None:
            self.reference, self._reference_var = self.estimate, float(data.var())
            return None
        drop = self.reference - self.estimate
        se = math.sqrt((self._reference_var + float(data.var())) / self.window) or 1e-12
        p_value = float(special.ndtr(-drop / se))
        effect = drop / self.tolerance if self.tolerance > 0 else (math.inf if drop > 0 else 0.0)
        score = min(evidence_score(p_value, self.alpha), max(0.0, effect))  # both must be past their threshold
        return WindowTest("cbpe", self.estimate, self.reference - self.tolerance, p_value, score, self.window, position)


class RealisedMetric:
    """Accuracy (classification, from 0/1 errors) or mean absolute error (regression) over the last labels."""

    def __init__(self, task: str, window: int = 1000):
        self.name = "mae" if task == "regression" else "accuracy"
        self._ring = _Ring(window)

    def update_many(self, errors: np.ndarray) -> RealisedMetric:
        """Add errors (0/1 for classifiers, absolute errors for regression)."""
        self._ring.push(np.asarray(errors, dtype=float))
        return self

    @property
    def value(self) -> float | None:
        """The metric over the window (None before the first label)."""
        if self._ring.n == 0:
            return None
        mean = float(self._ring.values().mean())
        return mean if self.name == "mae" else 1 - mean
