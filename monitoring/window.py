"""Building blocks of windowed tests: binned sliding windows, hop schedules and test outcomes.

A :class:`BinnedWindow` keeps the bin index of the last ``size`` values and their counts per bin, updated
in O(batch) numpy operations (no per-value Python), which is what makes per-batch monitoring cheap.

Examples
--------
>>> w = BinnedWindow(bins=3, size=4)
>>> w.push(np.array([0, 1, 1]))
>>> w.counts.tolist(), w.n
([1, 2, 0], 3)
>>> w.push(np.array([2, 2]))  # the oldest value (bin 0) leaves the window
>>> w.counts.tolist(), w.n
([0, 2, 2], 4)
>>> list(hop_chunks(seen=240, count=300, hop=100))  # values 300, 400 and 500 of the stream end a hop
[(0, 60, True), (60, 160, True), (160, 260, True), (260, 300, False)]
>>> round(evidence_score(1e-8, alpha=1e-4), 3)  # p-value twice as many decades below 1 as alpha
2.0
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: p-values are floored here before taking logs.
MIN_P_VALUE = 1e-300


@dataclass(frozen=True)
class WindowTest:
    """One evaluation of one windowed test.

    ``threshold`` is the value of ``statistic`` at which the test rejects at level ``alpha``; ``score`` is
    ``log(p) / log(alpha)`` (``>= 1`` rejects); ``position`` is the index, in the values passed to the
    update that ran it, of the last value of the window.
    """

    test: str
    statistic: float
    threshold: float
    p_value: float
    score: float
    samples: int
    position: int

    @property
    def rejected(self) -> bool:
        return self.score >= 1


class LatestTests:
    """For windowed detectors keeping the tests of their latest evaluation in ``_last``."""

    _last: list[WindowTest]

    @property
    def drift_detected(self) -> bool:
        """True when a test of the latest evaluation rejected."""
        return any(t.rejected for t in self._last)

    @property
    def last(self) -> list[WindowTest]:
        """The tests of the latest evaluation (empty before the first)."""
        return list(self._last)


def evidence_score(p_value: float, alpha: float) -> float:
    """``log(p) / log(alpha)``: 0 for p = 1, 1 at p = alpha, 2 at p = alpha squared."""
    return math.log(max(p_value, MIN_P_VALUE)) / math.log(alpha)


def hop_chunks(seen: int, count: int, hop: int) -> Iterator[tuple[int, int, bool]]:
    """Split ``count`` new values into ``(start, stop, evaluate)`` chunks ending at multiples of ``hop``.

    ``seen`` values came before; ``evaluate`` is True when the chunk ends exactly at a multiple of ``hop``.
    """
    start = 0
    due = hop - seen % hop
    while start < count:
        stop = min(count, start + due)
        yield start, stop, stop - start == due
        start, due = stop, hop


class BinnedWindow:
    """The bin indices of the last ``size`` values and the count of each bin."""

    def __init__(self, bins: int, size: int):
        if bins < 1 or size < 1:
            raise ValueError("bins and size must be >= 1")
        self.bins = bins
        self.size = size
        self.counts = np.zeros(bins, dtype=np.int64)
        self.n = 0
        self._ring = np.zeros(size, dtype=np.int32)
        self._pos = 0

    def push(self, idx: np.ndarray) -> None:
        """Add the bin indices ``idx`` (ints in ``[0, bins)``), evicting the oldest values beyond ``size``."""
        k = len(idx)
        if k == 0:
            return
        if k >= self.size:
            self._ring[:] = idx[-self.size :]
            self.counts = np.bincount(self._ring, minlength=self.bins)
            self.n, self._pos = self.size, 0
            return
        slots = (self._pos + np.arange(k)) % self.size
        overwritten = max(0, self.n + k - self.size)
        delta = np.bincount(idx, minlength=self.bins)
        if overwritten:
            delta -= np.bincount(self._ring[slots[k - overwritten :]], minlength=self.bins)
        self._ring[slots] = idx
        self.counts += delta
        self.n = min(self.size, self.n + k)
        self._pos = (self._pos + k) % self.size

    def values(self) -> np.ndarray:
        """Bin indices in the window, oldest first."""
        if self.n < self.size:
            return self._ring[: self.n].copy()
        return np.roll(self._ring, -self._pos)
