"""False-alarm budget of a fleet of detectors: per-test levels and sequential thresholds.

The user sets one fleet-wide rate (false alarms per 100,000 events across *all* detectors of a monitor).
Each of the ``detectors`` gets an equal share of it:

* a windowed test run every ``events_per_test`` events gets a Bonferroni or Šidák corrected level
  :meth:`FalseAlarmBudget.alpha`;
* a sequential detector (CUSUM, Page-Hinkley) gets an average run length between false alarms,
  :meth:`FalseAlarmBudget.arl`, which :func:`cusum_threshold` turns into a decision threshold.

Examples
--------
>>> budget = FalseAlarmBudget(per_100k_events=1.0, correction="bonferroni")
>>> budget.rate
1e-05
>>> budget.alpha(detectors=10, events_per_test=250)  # 2.5e-3 per 250 events, shared by 10 tests
0.00025
>>> round(FalseAlarmBudget(correction="sidak").alpha(10, 250) / 0.00025, 4)  # Šidák is barely larger
1.0011
>>> budget.arl(detectors=10)  # each of 10 sequential detectors may fire once per million events
1000000.0
>>> round(cusum_threshold(1e6), 2)
13.82
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Correction = Literal["bonferroni", "sidak"]


@dataclass(frozen=True)
class FalseAlarmBudget:
    """A fleet-wide false-alarm rate, split evenly over the detectors of a monitor.

    Parameters
    ----------
    per_100k_events
        Expected false alarms per 100,000 events the whole fleet may raise on a stationary stream.
    correction
        ``"bonferroni"`` (divide the family level by the number of tests) or ``"sidak"``
        (``1 - (1 - family) ** (1 / tests)``, exact for independent tests, never smaller).
    """

    per_100k_events: float = 1.0
    correction: Correction = "sidak"

    def __post_init__(self) -> None:
        if not self.per_100k_events > 0:
            raise ValueError("per_100k_events must be positive")
        if self.correction not in ("bonferroni", "sidak"):
            raise ValueError(f"unknown correction {self.correction!r}")

    @property
    def rate(self) -> float:
        """Fleet false alarms allowed per event."""
        return self.per_100k_events / 100_000

    def alpha(self, detectors: int, events_per_test: float) -> float:
        """Level of one test, for ``detectors`` tests that each run once every ``events_per_test`` events."""
        if detectors < 1 or events_per_test <= 0:
            raise ValueError("detectors must be >= 1 and events_per_test > 0")
        family = min(0.5, self.rate * events_per_test)
        if self.correction == "bonferroni":
            return family / detectors
        return -math.expm1(math.log1p(-family) / detectors)

    def arl(self, detectors: int) -> float:
        """Average run length (events) between false alarms allowed to one of ``detectors`` sequential detectors."""
        if detectors < 1:
            raise ValueError("detectors must be >= 1")
        return detectors * 100_000 / self.per_100k_events


def cusum_threshold(arl: float) -> float:
    """Threshold ``h`` on a log-likelihood-ratio CUSUM whose average run length under no change is >= ``arl``.

    Wald's bound: a CUSUM of log-likelihood ratios restarted at zero has ``ARL0 >= exp(h)``, so
    ``h = ln(arl)`` keeps the false-alarm rate within the budget whatever the stream's error rate.
    """
    if arl <= 1:
        raise ValueError("arl must exceed 1")
    return math.log(arl)


def page_hinkley_threshold(arl: float, delta: float) -> float:
    """Threshold ``h`` (in standard deviations) of a two-sided Page-Hinkley test on N(0, 1) inputs.

    Siegmund's approximation of a one-sided CUSUM with allowance ``delta``:
    ``ARL0 = (exp(2 delta b) - 2 delta b - 1) / (2 delta^2)`` with ``b = h + 1.166``. Two sides halve the
    run length, so each side is solved for ``2 * arl``.

    >>> round(page_hinkley_threshold(1e5, 0.5), 2)
    10.35
    """
    if arl <= 1 or delta <= 0:
        raise ValueError("arl must exceed 1 and delta be positive")
    target = 2 * arl
    low, high = 0.0, 1.0
    while _siegmund_arl(high, delta) < target:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        if _siegmund_arl(mid, delta) < target:
            low = mid
        else:
            high = mid
    return high


def _siegmund_arl(h: float, delta: float) -> float:
    b = 2 * delta * (h + 1.166)
    return (math.exp(b) - b - 1) / (2 * delta * delta)
